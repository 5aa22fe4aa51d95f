"""Templating: Jinja2 configured to render exactly like Ansible's ``template`` module.

WoD content was written for Ansible (SPEC 4.2), so the rules are Ansible's: ``trim_blocks``,
no ``lstrip_blocks``, ``\\n`` newlines (CRLF becomes LF), the trailing newlines of the source
restored after rendering, an undefined variable is an error (also inside ``{% if %}`` and for a
missing ``hostvars[...]['key']``), ``None`` renders empty, variable values are themselves
templated (lazily, on first use), and every variable is reachable through
``hostvars[inventory_hostname]``.  A first line ``#jinja2: trim_blocks: False, ...`` changes
those options for its template and is removed, as Ansible does.  Bytes that are not UTF-8
pass through unchanged (surrogate escapes, as Ansible does).  The Ansible filters and tests
WoD content may use are implemented in :mod:`wod.content.filters`; Ansible itself is never
imported.

A :class:`Renderer` compiles each template once and keeps it keyed by the file's path, mtime
and size, so deploying the same workshop for the next student costs only the rendering.
"""

from __future__ import annotations

import ast
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.nativetypes import NativeCodeGenerator

from wod.content import filters
from wod.errors import Permanent

INVENTORY_HOSTNAME = "localhost"
_MARKERS = ("{{", "{%", "{#")
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")
JINJA2_OVERRIDE = "#jinja2:"
_OVERRIDE_TYPES: dict[str, type | tuple[type, ...]] = {
    "block_start_string": str,
    "block_end_string": str,
    "variable_start_string": str,
    "variable_end_string": str,
    "comment_start_string": str,
    "comment_end_string": str,
    "line_statement_prefix": (str, type(None)),
    "line_comment_prefix": (str, type(None)),
    "trim_blocks": bool,
    "lstrip_blocks": bool,
    "newline_sequence": str,
    "keep_trailing_newline": bool,
}


class TemplateFailure(Permanent):
    """A template that cannot be rendered; names the file, the line and the variable."""

    def __init__(
        self, reason: str, *, path: str = "", line: int | None = None, variable: str | None = None
    ) -> None:
        super().__init__(reason)
        self.path = path
        self.line = line
        self.variable = variable
        #: every failing template, when several were checked at once (a dry run)
        self.failures: list[TemplateFailure] = [self]


@jinja2.pass_context
def _finalize(_ctx: Any, value: Any) -> Any:
    # Taking the context stops Jinja folding constants, as Ansible's finalize does.
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises here, inside the template, so the error has its line
    return value


def native_concat(chunks: Iterator[Any]) -> Any:
    """Ansible's result assembly: nothing -> None, one chunk -> its own value (native type),
    several -> their text joined (None as empty)."""
    head = list(islice(chunks, 2))
    if not head:
        return None
    if len(head) == 1:
        if isinstance(head[0], jinja2.Undefined):
            str(head[0])  # raises: an undefined value is an error
        return head[0]
    return "".join("" if v is None else str(v) for v in chain(head, chunks))


class _Generator(NativeCodeGenerator):
    """Yields output values unconverted; literal text stays text (no literal_eval)."""


def make_environment() -> jinja2.Environment:
    """A Jinja2 environment with the Ansible ``template`` module's settings."""
    env = jinja2.Environment(
        trim_blocks=True,
        lstrip_blocks=False,
        newline_sequence="\n",
        keep_trailing_newline=False,
        autoescape=False,
        undefined=StrictUndefined,
        finalize=_finalize,
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"],
        cache_size=0,
        auto_reload=False,
    )
    env.code_generator_class = _Generator
    env.filters.update(filters.FILTERS)
    env.tests.update(filters.TESTS)
    return env


def split_overrides(source: str) -> tuple[str, dict[str, Any]]:
    """Ansible's template header: a first line ``#jinja2: key: value, ...`` sets Jinja options
    (``trim_blocks``, ``lstrip_blocks``, delimiters, ``newline_sequence``...) for this template
    and is removed.  Returns the remaining source and the options; ``ValueError`` when the
    header is malformed, as Ansible refuses it."""
    if not source.startswith(JINJA2_OVERRIDE):
        return source, {}
    eol = source.find("\n")
    if eol == -1:
        raise ValueError(f"missing newline after {JINJA2_OVERRIDE!r} override")
    line, rest = source[len(JINJA2_OVERRIDE) : eol], source[eol + 1 :]
    options: dict[str, Any] = {}
    for pair in line.split(","):
        if not pair.strip():
            raise ValueError(f"empty {JINJA2_OVERRIDE!r} override pair")
        if ":" not in pair:
            raise ValueError(f"missing ':' in {JINJA2_OVERRIDE!r} override pair {pair!r}")
        key, value = (part.strip() for part in pair.split(":", 1))
        if key not in _OVERRIDE_TYPES:
            raise ValueError(f"invalid {JINJA2_OVERRIDE!r} override key {key!r}")
        parsed = ast.literal_eval(value)
        if not isinstance(parsed, _OVERRIDE_TYPES[key]):
            raise ValueError(f"{JINJA2_OVERRIDE!r} override {key!r}: unexpected value {value}")
        options[key] = parsed
    if options.get("newline_sequence", "\n") not in ("\n", "\r\n", "\r"):
        raise ValueError("newline_sequence must be one of \\n, \\r or \\r\\n")
    return rest, options


def count_trailing_newlines(text: str) -> int:
    """Number of ``\\n`` at the end of ``text`` (Ansible's ``_count_newlines_from_end``)."""
    return len(text) - len(text.rstrip("\n"))


class Variables(Mapping[str, Any]):
    """Template variables whose values are templated on first use (like Ansible's).

    Also answers ``hostvars`` (every host name maps to these variables) and
    ``inventory_hostname``.  A value referring to itself is an error, not a hang.
    """

    def __init__(
        self, raw: Mapping[str, Any], env: jinja2.Environment, hostname: str = INVENTORY_HOSTNAME
    ) -> None:
        self._raw = dict(raw)
        self._env = env
        self._done: dict[str, Any] = {}
        self._busy: set[str] = set()
        self._lock = threading.RLock()
        self.hostname = hostname
        self._raw.setdefault("inventory_hostname", hostname)
        self._raw.setdefault("inventory_hostname_short", hostname.split(".")[0])
        self._hostvars = _HostVars(self)

    def __getitem__(self, key: str) -> Any:
        if key == "hostvars":
            return self._hostvars
        if key in self._done:
            return self._done[key]
        if key not in self._raw:
            if key in self._env.globals:
                return self._env.globals[key]
            raise KeyError(key)
        with self._lock:
            if key in self._done:
                return self._done[key]
            if key in self._busy:
                raise TemplateFailure(f"variable '{key}' refers to itself", variable=key)
            self._busy.add(key)
            try:
                value = self.template_value(self._raw[key])
            finally:
                self._busy.discard(key)
            self._done[key] = value
            return value

    def __contains__(self, key: object) -> bool:
        return key == "hostvars" or key in self._raw or key in self._env.globals

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def raw(self) -> dict[str, Any]:
        return dict(self._raw)

    def template_value(self, value: Any) -> Any:
        """Template a variable's value: strings with Jinja markers, inside lists and dicts."""
        if isinstance(value, str):
            if not any(m in value for m in _MARKERS):
                return value
            template = self._env.from_string(value)
            ctx = template.new_context(self, shared=True)
            return native_concat(template.root_render_func(ctx))
        if isinstance(value, list):
            return [self.template_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.template_value(v) for k, v in value.items()}
        return value


class _HostVars(Mapping[str, Any]):
    """``hostvars``: the one inventory host (and any name asked for) sees all variables."""

    def __init__(self, variables: Variables) -> None:
        self._v = variables

    def __getitem__(self, host: str) -> Any:
        if host != self._v.hostname:
            raise KeyError(host)
        return _HostView(self._v)

    def __iter__(self) -> Iterator[str]:
        return iter([self._v.hostname])

    def __len__(self) -> int:
        return 1


class _HostView(Mapping[str, Any]):
    def __init__(self, variables: Variables) -> None:
        self._v = variables

    def __getitem__(self, key: str) -> Any:
        if key == "hostvars" or key not in self._v._raw:
            raise KeyError(key)
        return self._v[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._v)

    def __len__(self) -> int:
        return len(self._v)


@dataclass
class Compiled:
    template: jinja2.Template
    newlines: int
    #: lines removed before compiling (a ``#jinja2:`` header), added back in error lines
    line_offset: int = 0


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


class Renderer:
    """Compiles and renders templates; compiled templates are cached per file version."""

    def __init__(self, env: jinja2.Environment | None = None) -> None:
        self.env = env or make_environment()
        self._cache: dict[tuple[str, int, int], Compiled] = {}
        self._overlays: dict[tuple[tuple[str, Any], ...], jinja2.Environment] = {}
        self._lock = threading.Lock()
        self.compiled = 0

    def variables(self, raw: Mapping[str, Any]) -> Variables:
        return Variables(raw, self.env)

    def _environment(self, options: dict[str, Any]) -> jinja2.Environment:
        """The environment for a template's ``#jinja2:`` options (one overlay per set)."""
        if not options:
            return self.env
        key = tuple(sorted(options.items()))
        with self._lock:
            env = self._overlays.get(key)
            if env is None:
                env = self._overlays[key] = self.env.overlay(**options)
            return env

    def compile_source(self, source: str, name: str = "<template>") -> Compiled:
        try:
            body, options = split_overrides(source)
        except (ValueError, SyntaxError) as exc:
            raise TemplateFailure(
                f"{name}, line 1: template syntax error: {exc}", path=name, line=1
            ) from None
        offset = 0 if body is source else 1
        env = self._environment(options)
        try:
            code = env.compile(body, name=name, filename=name)
        except jinja2.TemplateSyntaxError as exc:
            line = (exc.lineno or 0) + offset
            raise TemplateFailure(
                f"{name}, line {line}: template syntax error: {exc.message}",
                path=name,
                line=line,
            ) from None
        template = env.template_class.from_code(env, code, env.make_globals(None))
        self.compiled += 1
        # Ansible counts the trailing newlines of the whole source, header included.
        return Compiled(template, count_trailing_newlines(source), offset)

    def compile_file(
        self, path: Path, name: str | None = None, stat: os.stat_result | None = None
    ) -> Compiled:
        """The compiled template of ``path``, reused while its mtime and size are unchanged."""
        st = stat or path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        compiled = self.compile_source(decode(path.read_bytes()), name or str(path))
        with self._lock:
            self._cache[key] = compiled
        return compiled

    def render(self, compiled: Compiled, variables: Variables) -> bytes:
        template = compiled.template
        name = template.filename or "<template>"
        try:
            ctx = template.new_context(variables, shared=True)
            value = native_concat(template.root_render_func(ctx))
        except TemplateFailure as exc:
            raise TemplateFailure(
                f"{name}: {exc.reason}", path=name, variable=exc.variable
            ) from None
        except (TemplateError, TypeError, ValueError, KeyError) as exc:
            raise _failure(exc, name, template, compiled.line_offset) from None
        if not isinstance(value, str):
            # Ansible keeps a lone value's native type: no trailing newlines restored.
            return encode("" if value is None else str(value))
        missing = compiled.newlines - count_trailing_newlines(value)
        if missing > 0:
            value += "\n" * missing
        return encode(value)

    def render_string(self, source: str, variables: Variables, name: str = "<template>") -> str:
        return decode(self.render(self.compile_source(source, name), variables))


def _failure(
    exc: Exception, name: str, template: jinja2.Template, offset: int = 0
) -> TemplateFailure:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            line = template.get_corresponding_lineno(tb.tb_lineno) + offset
        tb = tb.tb_next
    message = getattr(exc, "message", None) or str(exc)
    variable = None
    if isinstance(exc, UndefinedError):
        match = _UNDEFINED_NAME.search(message)
        if match:
            variable = match.group(1) or match.group(2)
    where = f"{name}, line {line}" if line else name
    what = f"undefined variable '{variable}'" if variable else message
    return TemplateFailure(f"{where}: {what}", path=name, line=line, variable=variable)
