"""Oracle: our renderer and Ansible's ``template`` module give identical bytes.

Every file a deployment renders (SPEC 4.3 rule 4) of every shared fixture workshop, and a set
of tricky hand-written templates, are rendered by ``ansible-playbook`` (local connection, one
playbook run per workshop with a loop) and by :class:`wod.content.templating.Renderer` with the
same variables; the bytes must match.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.plugins.paths import FIXTURE_WORKSHOPS, _fixtures_path
from wod.content.deploy import plan
from wod.content.templating import Renderer, TemplateFailure

BIN = Path(sys.executable).parent
FIXTURES = FIXTURE_WORKSHOPS

pytestmark = pytest.mark.skipif(
    not (BIN / "ansible-playbook").exists(),
    reason="ansible-playbook (test dependency) not installed",
)

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: render
      template:
        src: "{{ item.src }}"
        dest: "{{ item.dest }}"
      vars:
        WORKSHOP: "{{ item.workshop }}"
        CHALLENGE: "{{ item.workshop }}"
      loop: "{{ wod_oracle_files }}"
      ignore_errors: true
"""


def template_files(src: Path) -> list[Path]:
    """Every file of ``src`` that a deployment renders (the deployment's own plan)."""
    return [src / e.rel for e in plan(src) if e.action == "render"]


def fixture_variables(stdid: int = 7, mode: str = "WKSHP") -> dict:
    """Values for every variable the fixtures use (some only a private repo would give);
    ``WORKSHOP`` and ``CHALLENGE`` are set per file."""
    values = {
        "MODEWS": mode,
        "DIR": "",
        "STDID": str(stdid),
        "PASSSTU": "s3cr3t-Pw",
        "HTTPPORT": "8080",
        "OCENDPOINT": "https://oc.example.com",
        "BRANDING": "Acme",
        "BRANDINGWOD": "Acme Workshops-on-Demand",
        "BRANDINGLOGO": "![logo](Pictures/logo.png)",
        "BRANDINGURL": "https://wod.example.com",
        "SURVEYURL": "https://survey.example.com/w",
        "SURVEYCHALURL": "https://survey.example.com/c",
        "WODBEEXTFQDN": "backend.example.com",
        "HTTPPORT-WKSHP-Ansible101": "8081",
        "LABPREFIX": "lab",
    }
    for name in FIXTURES:
        values[f"IP-{name}"] = "192.0.2.10"
    return values


def run_ansible(pairs: list[tuple[Path, Path, str]], variables: dict, work: Path) -> None:
    """Render each (src, dest, workshop) with one ``ansible-playbook`` run."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "pb.yml").write_text(PLAYBOOK)
    (work / "inventory").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    data = dict(variables)
    data["wod_oracle_files"] = [{"src": str(s), "dest": str(d), "workshop": w} for s, d, w in pairs]
    # Extra variables: like upstream's runtime values, and never templated away.
    (work / "vars.yml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    env = dict(
        os.environ,
        ANSIBLE_HOME=str(work / "home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
        ANSIBLE_DEPRECATION_WARNINGS="False",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
    )
    done = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(work / "inventory"),
            str(work / "pb.yml"),
            "-e",
            f"@{work / 'vars.yml'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


TRICKY = {
    "no-newline": b"{{ STDID }}",
    "one-newline": b"{{ STDID }}\n",
    "three-newlines": b"a {{ STDID }}\n\n\n",
    "endif-newline": b"{% if MODEWS == 'WKSHP' %}\nyes\n{% endif %}\n",
    "endif-false": b"{% if MODEWS == 'CHLG' %}\nyes\n{% endif %}\n",
    "else-branch": b"x\n{% if MODEWS == 'CHLG' %}\nchal\n{% else %}\nws\n{% endif %}\ny\n",
    "raw": b"{% raw %}\n{{ not_a_var }} {% if %}\n{% endraw %}\nafter {{ STDID }}\n",
    "escapes": b"{{ '{{' }} x {{ '}}' }} {{ '{%' }} {{ '{#' }}\n",
    "crlf": b"line1\r\n{{ STDID }}\r\n{% if true %}\r\nin\r\n{% endif %}\r\n\r\n",
    "empty": b"",
    "only-newlines": b"\n\n",
    "comment": b"{# note #}\nkeep\n",
    "hostvars": b"{{ hostvars[inventory_hostname]['IP-WKSHP-X'] }} {{ inventory_hostname }}\n",
    "templated-value": b"{{ DERIVED }} {{ NESTED.url }}\n",
    "types": b"{{ NONE }}|{{ YES }}|{{ NUM }}|{{ LIST }}|{{ MAP }}|{{ FLOAT }}\n",
    "lone-list": b"{{ LIST }}\n",
    "lone-none": b"{{ NONE }}\n",
    "lone-int": b"{{ NUM }}\n",
    "filters": (
        b"{{ MAP | to_json }}\n{{ MAP | to_nice_json }}\n{{ MAP | to_yaml }}"
        b"{{ MAP | to_nice_yaml }}{{ 'a b;c' | quote }} {{ '/x/y/z.txt' | basename }} "
        b"{{ '/x/y/z.txt' | dirname }} {{ 'yes' | bool }} {{ 'off' | bool }} "
        b"{{ 'h\xc3\xa9llo' | b64encode }} {{ 'aXbXc' | regex_replace('X', '-') }} "
        b"{{ 'Hello' | regex_replace('^h', 'J', ignorecase=true) }} "
        b"{{ MISSING | default('dflt') }} {{ STDID | mandatory }} {{ NONE | default('n', true) }}"
        b" {{ LIST | to_json }} {{ 'abc' is match('a') }} {{ 'abc' is search('c') }}\n"
    ),
    "defined": b"{% if MISSING is defined %}d{% else %}u{% endif %} {{ MISSING is undefined }}\n",
    "loop": b"{% for i in LIST %}\n- {{ i }}\n{% endfor %}\nend\n",
    "notebook": (
        b'{\n "cells": [\n  {\n   "cell_type": "markdown",\n   "source": [\n'
        b'    "student{{ STDID }} / {{ PASSSTU }}\\n",\n    "{% raw %}{{ x }}{% endraw %}"\n'
        b'   ]\n  }\n ],\n "nbformat": 4\n}\n'
    ),
    "latin1": b"caf\xe9 {{ STDID }}\n",
    "whitespace-control": b"a\n  {%- if true %}\n  b\n  {% endif -%}\n  c\n",
    "set-var": b"{% set x = STDID | int + 1 %}\n{{ x }}\n",
    # Ansible's first-line header changes the Jinja options of its template.
    "header-trim-lstrip": (
        b"#jinja2: trim_blocks: False, lstrip_blocks: True\n{% if true %}\n"
        b"  {% if true %}\nx\n  {% endif %}\n{% endif %}\ny\n"
    ),
    "header-lstrip": b"#jinja2: lstrip_blocks: True\na\n    {% if true %}\nb\n    {% endif %}\n",
    "header-delimiters": (
        b"#jinja2:variable_start_string:'[%', variable_end_string:'%]'\n[% STDID %] {{ x }}\n"
    ),
    "header-newline": b"#jinja2: newline_sequence:'\\r\\n'\na\n{{ STDID }}\n",
    "header-keep": b"#jinja2: keep_trailing_newline: True\n{{ STDID }}\n\n",
    "header-crlf": b"#jinja2: trim_blocks: False\r\n{% if true %}\r\nx\r\n{% endif %}\r\n",
    "header-only": b"#jinja2: trim_blocks: False\n",
    "header-not-first": b" #jinja2: trim_blocks: False\n{% if true %}\nx\n{% endif %}\n",
    "yaml-scalars": (
        b"{{ 5 | to_yaml }}|{{ NONE | to_yaml }}|{{ 'x' | to_yaml }}|{{ MAP.a | to_nice_yaml }}"
        b"|{{ 'a: b' | to_yaml }}|{{ 'multi\\nline' | to_yaml }}|{{ 'yes' | to_yaml }}\n"
    ),
}

TRICKY_VARS = {
    "STDID": "7",
    "MODEWS": "WKSHP",
    "PASSSTU": "pw",
    "IP-WKSHP-X": "198.51.100.4",
    "DERIVED": "{{ STDID }}-derived",
    "NESTED": {"url": "http://h/{{ STDID }}"},
    "NONE": None,
    "YES": True,
    "NUM": 42,
    "FLOAT": 1.5,
    "LIST": [1, "two", 3.0],
    "MAP": {"b": [1, 2], "a": "\u00e9t\u00e9", "c": {"d": None}},
}


BAD = {
    "if-undefined": b"a\n{% if NOPE == 'x' %}\ny\n{% endif %}\n",
    "hostvars-missing": b"{{ hostvars[inventory_hostname]['IP-WKSHP-NOPE'] }}\n",
    "plain-undefined": b"line\n{{ NOPE }}\n",
    "lone-undefined": b"{{ NOPE }}",
    "header-undefined": b"#jinja2: lstrip_blocks: True\nok\n{{ NOPE }}\n",
}

BAD_HEADERS = {
    "header-no-colon": b"#jinja2: trim_blocks False\nx\n",
    "header-unknown-key": b"#jinja2: autoescape: True\nx\n",
    "header-no-newline": b"#jinja2: trim_blocks: False",
}


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``ansible-playbook`` run rendering every fixture template (when the shared
    fixtures are present), the tricky and the bad templates, into
    ``<root>/ansible/<set>/...``; sources under ``<root>/src``.  The tricky and bad sets are
    ours, so they are checked against Ansible everywhere."""
    root = tmp_path_factory.mktemp("oracle")
    pairs: list[tuple[Path, Path, str]] = []
    fixtures_dir = _fixtures_path()
    for workshop in FIXTURES:
        src = fixtures_dir / workshop
        if not src.is_dir():
            continue
        for f in template_files(src):
            pairs.append((f, root / "ansible" / workshop / f.relative_to(src), workshop))
    for group, files in (("tricky", TRICKY), ("bad", BAD), ("bad-header", BAD_HEADERS)):
        (root / "src" / group).mkdir(parents=True)
        for name, data in files.items():
            (root / "src" / group / name).write_bytes(data)
            pairs.append(
                (root / "src" / group / name, root / "ansible" / group / name, "WKSHP-Oracle")
            )
    for _, dest, _ in pairs:
        dest.parent.mkdir(parents=True, exist_ok=True)
    variables = {**fixture_variables(), **TRICKY_VARS}
    run_ansible(pairs, variables, root / "run")
    shutil.rmtree(root / "run", ignore_errors=True)
    return root


def _ours(source: Path, workshop: str, name: str | None = None) -> bytes:
    renderer = Renderer()
    variables = {**fixture_variables(), **TRICKY_VARS, "WORKSHOP": workshop, "CHALLENGE": workshop}
    return renderer.render(renderer.compile_file(source, name), renderer.variables(variables))


@pytest.mark.fixtures
@pytest.mark.parametrize("workshop", FIXTURES)
def test_fixture_workshop_renders_like_ansible(
    workshop: str, fixtures_dir: Path, oracle: Path
) -> None:
    src = fixtures_dir / workshop
    files = template_files(src)
    assert files, f"{workshop} has no templated file"
    for source in files:
        dest = oracle / "ansible" / workshop / source.relative_to(src)
        assert dest.is_file(), f"ansible did not render {source.relative_to(src)}"
        assert _ours(source, workshop) == dest.read_bytes(), (
            f"{workshop}/{source.relative_to(src)} differs"
        )


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_template_renders_like_ansible(name: str, oracle: Path) -> None:
    ours = _ours(oracle / "src" / "tricky" / name, "WKSHP-Oracle")
    assert ours == (oracle / "ansible" / "tricky" / name).read_bytes()


@pytest.mark.parametrize("name", sorted(BAD))
def test_undefined_variable_fails_in_both(name: str, oracle: Path) -> None:
    """A template Ansible refuses (undefined in an if, missing hostvars key) we refuse too,
    naming the file, the line and the variable."""
    assert not (oracle / "ansible" / "bad" / name).exists(), f"ansible rendered {name}"
    with pytest.raises(TemplateFailure) as info:
        _ours(oracle / "src" / "bad" / name, "WKSHP-Oracle", name)
    message = str(info.value)
    assert name in message and "line" in message
    assert info.value.variable in ("NOPE", "IP-WKSHP-NOPE")


def test_undefined_variable_after_a_header_names_the_file_line(oracle: Path) -> None:
    with pytest.raises(TemplateFailure) as info:
        _ours(oracle / "src" / "bad" / "header-undefined", "WKSHP-Oracle", "header-undefined")
    assert info.value.line == 3 and "header-undefined, line 3" in str(info.value)


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_malformed_header_fails_in_both(name: str, oracle: Path) -> None:
    assert not (oracle / "ansible" / "bad-header" / name).exists(), f"ansible rendered {name}"
    with pytest.raises(TemplateFailure) as info:
        _ours(oracle / "src" / "bad-header" / name, "WKSHP-Oracle", name)
    assert f"{name}, line 1" in str(info.value) and "#jinja2:" in str(info.value)
