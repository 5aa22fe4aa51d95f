"""Imports follow the layers (docs/architecture.md, "Layers"), read with ``ast`` from the
source files (nothing is imported):

    cli/, web/          adapters: parse, call one wod.ops function, render
        -> ops/         one function per operation, typed results
        -> lifecycle/, queue, worker, services/, content/, registry/
        -> settings, errors, requests, proc, passwords, values, access, logs, metrics

Nothing imports ``cli``, ``web`` or ``intake`` (but for the composition roots named in
ALLOWED); lifecycle never reads the queue; cli/web run no SQL and no subprocess.  Imports
under ``if TYPE_CHECKING:`` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "wod"

ADAPTERS = ("wod.cli", "wod.web")
OPS = ("wod.ops",)
DOMAIN = (
    "wod.lifecycle",
    "wod.queue",
    "wod.worker",
    "wod.services",
    "wod.content",
    "wod.registry",
    "wod.metrics",
)
FOUNDATION = (
    "wod.settings",
    "wod.errors",
    "wod.requests",
    "wod.proc",
    "wod.passwords",
    "wod.values",
    "wod.access",
    "wod.logs",
)
CLOSED = ("wod.cli", "wod.web", "wod.intake", "wod.server")

# Composition roots: the only modules that may import a closed package, and why.
ALLOWED = {
    ("wod.__main__", "wod.cli"),  # python -m wod
    # `wod serve` starts the server, the server mounts the web app and the intake.
    ("wod.cli.serve", "wod.server"),
    ("wod.server", "wod.web"),
    ("wod.server", "wod.intake"),
    ("wod.web.app", "wod.intake"),
    # `wod intake` is the pipe channel's own entry point (procmail, Postfix).
    ("wod.cli.intake", "wod.intake"),
}
# What an adapter may import besides wod.ops and the foundation.
ADAPTER_EXTRA = {
    ("wod.web.app", "wod.queue"),  # builds the app over the server's queue
    ("wod.web.app", "wod.worker"),  # the workers' metrics on /metrics
    ("wod.web.app", "wod.metrics"),
}
NO_ADAPTER_MODULES = ("sqlite3", "subprocess")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every runtime import in the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # ``from wod import proc`` imports the module wod.proc
            found.extend((f"{target}.{a.name}", node.lineno) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _top(name: str, prefixes: tuple[str, ...]) -> str:
    return next(p for p in prefixes if _within(name, (p,)))


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(root: Path = PACKAGE) -> list[str]:
    """Every import that crosses the layers the wrong way, as ``file:line: what``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if "samples" in path.relative_to(root).parts:
            continue
        module = _module_name(path)
        for target, line in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if _within(module, ADAPTERS) and target.split(".")[0] in NO_ADAPTER_MODULES:
                found.append(f"{where}: adapters run no SQL or subprocess ({target})")
                continue
            if not target.startswith("wod.") or not _is_module(target):
                continue
            if _within(target, CLOSED):
                top = _top(target, CLOSED)
                if not (
                    _within(module, (top,))
                    or any(_within(module, (m,)) and top == t for m, t in ALLOWED)
                ):
                    found.append(f"{where}: nothing imports {top} ({module} -> {target})")
                continue
            if _within(module, ADAPTERS):
                ok = _within(target, OPS + FOUNDATION) or any(
                    module == m and _within(target, (t,)) for m, t in ADAPTER_EXTRA
                )
                if not ok:
                    found.append(f"{where}: adapters call wod.ops ({module} -> {target})")
            elif _within(module, OPS):
                pass  # ops may use everything below it; closed packages are checked above
            elif _within(module, DOMAIN):
                if _within(target, OPS):
                    found.append(f"{where}: {module} is below wod.ops ({target})")
                elif _within(module, ("wod.lifecycle",)) and _within(
                    target, ("wod.queue", "wod.worker")
                ):
                    found.append(f"{where}: lifecycle never reads the queue ({target})")
            elif _within(module, FOUNDATION) and not _within(target, FOUNDATION):
                found.append(f"{where}: {module} is a foundation module ({target})")
    return found


def test_imports_follow_the_layers() -> None:
    problems = violations()
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    "name, source, expected",
    [
        ("cli/x.py", "import sqlite3\n", "adapters run no SQL or subprocess"),
        ("cli/x.py", "from subprocess import run\n", "adapters run no SQL or subprocess"),
        ("cli/x.py", "from wod.queue import JobQueue\n", "adapters call wod.ops"),
        ("web/x.py", "from wod.services import accounts\n", "adapters call wod.ops"),
        ("ops/x.py", "from wod.cli import cli\n", "nothing imports wod.cli"),
        ("ops/x.py", "from wod.intake.http import subject_of\n", "nothing imports wod.intake"),
        ("content/x.py", "from wod.web import api\n", "nothing imports wod.web"),
        ("services/x.py", "from wod.ops.jobs import open_queue\n", "is below wod.ops"),
        ("lifecycle/x.py", "from wod.queue import JobQueue\n", "lifecycle never reads the queue"),
        ("lifecycle/x.py", "from ..queue import JobQueue\n", "lifecycle never reads the queue"),
        ("values.py", "from wod.content import catalog\n", "is a foundation module"),
    ],
)
def test_each_rule_catches_its_violation(tmp_path, name, source, expected) -> None:
    """The checker itself: a planted wrong import is found (and the same file with the
    import under TYPE_CHECKING is not)."""
    fake = tmp_path / "wod"
    for folder in ("cli", "web", "ops", "intake", "content", "services", "lifecycle"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    for module in ("queue", "values", "server"):
        (fake / f"{module}.py").write_text("")
    for module in ("cli/__init__", "intake/http", "web/api", "ops/jobs", "services/accounts"):
        (fake / f"{module}.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / name).write_text(source)
    global ROOT
    saved = ROOT
    ROOT = tmp_path
    try:
        found = violations(fake)
        assert any(expected in p for p in found), found
        (fake / name).write_text(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            + "".join("    " + line + "\n" for line in source.splitlines())
        )
        assert violations(fake) == []
    finally:
        ROOT = saved
