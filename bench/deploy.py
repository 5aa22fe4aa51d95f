"""Benchmark: content deployment vs ansible-playbook vs ``cp -a`` (docs/benchmarks.md).

For each shared fixture workshop, side by side in one run: our deployment cold (fresh
``Content``, nothing cached) and warm (same ``Content``, another student), an equivalent
``ansible-playbook`` (copy + template + file tasks, local connection) and ``cp -a`` of the
folder.  Then how our cost grows with the number and size of files and with students in a row.
Writes the tables into docs/benchmarks.md (section "Content deployment").

    .venv/bin/python bench/deploy.py [--runs 5] [--ansible-runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.plugins.paths import FIXTURE_WORKSHOPS  # noqa: E402
from tests.test_templating_oracle import fixture_variables, template_files  # noqa: E402
from wod.content.service import Content  # noqa: E402
from wod.settings import load_settings  # noqa: E402

FIXTURES = Path(os.environ.get("WOD_FIXTURES", ROOT.parent / "shared" / "fixtures" / "notebooks"))
WORKSHOPS = FIXTURE_WORKSHOPS
BIN = Path(sys.executable).parent

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: remove previous copy
      file: {path: "{{ HOME_DIR }}/{{ WORKSHOP }}", state: absent}
    - name: copy the workshop
      copy: {src: "{{ SRC }}/", dest: "{{ HOME_DIR }}/{{ WORKSHOP }}/"}
    - name: find templates
      find:
        paths: "{{ SRC }}"
        patterns: ["*.ipynb", "*.yaml", "*.py", "*.sh", "*.src", "*.tf", "*.env", "Variables.ps1"]
        excludes: [".*", "*-checkpoint.ipynb"]
        recurse: true
        hidden: true
      register: found
    - name: render templates
      template:
        src: "{{ item.path }}"
        dest: "{{ HOME_DIR }}/{{ WORKSHOP }}/{{ item.path | regex_replace('^' + SRC + '/', '') }}"
        mode: "0644"
      loop: "{{ found.files }}"
    - name: checkpoint folder
      file:
        path: "{{ HOME_DIR }}/{{ WORKSHOP }}/.ipynb_checkpoints"
        state: directory
        mode: "0751"
    - name: checkpoint copy
      copy:
        src: "{{ HOME_DIR }}/{{ WORKSHOP }}/0-ReadMeFirst.ipynb"
        dest: "{{ HOME_DIR }}/{{ WORKSHOP }}/.ipynb_checkpoints/0-ReadMeFirst-checkpoint.ipynb"
        remote_src: true
"""


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def settings_for(notebooks: Path, state: Path):
    return load_settings(None, environ={}, notebooks_dir=notebooks, state_dir=state)


def bench_ours(notebooks: Path, workshop: str, work: Path, runs: int) -> tuple[float, float]:
    variables = fixture_variables()
    cold, warm = [], []
    for i in range(runs):
        home = work / f"cold{i}"
        home.mkdir()
        content = Content(settings_for(notebooks, work / "state"))
        cold.append(
            timed(
                lambda c=content, h=home: c.deploy(
                    workshop, 1, h, uid=None, gid=None, extra=variables
                )
            )
        )
    content = Content(settings_for(notebooks, work / "state"))
    first = work / "warm-first"
    first.mkdir()
    content.deploy(workshop, 1, first, uid=None, gid=None, extra=variables)
    for i in range(runs):
        home = work / f"warm{i}"
        home.mkdir()
        warm.append(
            timed(
                lambda h=home, n=i: content.deploy(
                    workshop, n + 2, h, uid=None, gid=None, extra=dict(variables, STDID=str(n + 2))
                )
            )
        )
    return median_ms(cold), median_ms(warm)


def bench_cp(src: Path, work: Path, runs: int) -> float:
    out = []
    for i in range(runs):
        dest = work / f"cp{i}"
        out.append(timed(lambda d=dest: subprocess.run(["cp", "-a", str(src), str(d)], check=True)))
    return median_ms(out)


def bench_ansible(src: Path, workshop: str, work: Path, runs: int) -> float | None:
    if not (BIN / "ansible-playbook").exists():
        return None
    import yaml

    (work / "pb.yml").write_text(PLAYBOOK)
    (work / "inventory").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    env = dict(
        os.environ,
        ANSIBLE_HOME=str(work / "ah"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="False",
        ANSIBLE_LOCALHOST_WARNING="False",
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
    )
    out = []
    for i in range(runs):
        home = work / f"ansible{i}"
        home.mkdir()
        values = dict(
            fixture_variables(),
            WORKSHOP=workshop,
            CHALLENGE=workshop,
            SRC=str(src),
            HOME_DIR=str(home),
        )
        (work / "vars.yml").write_text(yaml.safe_dump(values, sort_keys=False))
        argv = [
            str(BIN / "ansible-playbook"),
            "-i",
            str(work / "inventory"),
            str(work / "pb.yml"),
            "-e",
            f"@{work / 'vars.yml'}",
        ]
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        out.append(time.perf_counter() - started)
        if done.returncode != 0:
            print(done.stdout[-2000:], file=sys.stderr)
            return None
    return median_ms(out)


def synthetic(root: Path, files: int, size: int, templated: float = 0.5) -> Path:
    ws = root / f"WKSHP-Synth{files}x{size}"
    (ws / "data").mkdir(parents=True)
    (ws / "0-ReadMeFirst.ipynb").write_text('{"cells": ["student {{ STDID }}"]}\n')
    body = ("x" * 63 + "\n") * max(1, size // 64)
    for i in range(files):
        if i < files * templated:
            (ws / f"n{i}.ipynb").write_text('{"s": "{{ STDID }}"}\n' + body)
        else:
            (ws / "data" / f"f{i}.bin").write_text(body)
    return ws


def bench_scaling(work: Path, runs: int) -> list[tuple[str, float, float]]:
    rows = []
    tree = work / "synth"
    for files, size in ((10, 4096), (100, 4096), (1000, 4096), (100, 65536), (100, 1 << 20)):
        ws = synthetic(tree, files, size)
        content = Content(settings_for(tree, work / "state"))
        content.deploy(ws.name, 1, _fresh(work), uid=None, gid=None)
        warm = [
            timed(lambda c=content, w=ws: c.deploy(w.name, 2, _fresh(work), uid=None, gid=None))
            for _ in range(runs)
        ]
        cp = bench_cp(ws, _fresh(work), runs)
        rows.append((f"{files} files x {size // 1024} KiB (half rendered)", median_ms(warm), cp))
    return rows


def bench_students(
    notebooks: Path, workshop: str, work: Path, counts=(1, 10, 50)
) -> list[tuple[int, float]]:
    rows = []
    for count in counts:
        content = Content(settings_for(notebooks, work / "state"))
        base = fixture_variables()

        def run(c=content, n=count, b=base) -> None:
            for s in range(1, n + 1):
                c.deploy(workshop, s, _fresh(work), uid=None, gid=None, extra=dict(b, STDID=str(s)))

        rows.append((count, timed(run) * 1000))
    return rows


_counter = [0]


def _fresh(work: Path) -> Path:
    _counter[0] += 1
    path = work / f"h{_counter[0]}"
    path.mkdir()
    return path


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs (`nproc`), {cpu}, Python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ansible-runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="Do not update docs.")
    args = parser.parse_args()
    if not FIXTURES.is_dir():
        sys.exit(f"fixture workshops not found at {FIXTURES} (set WOD_FIXTURES)")
    lines = [
        "## Content deployment",
        "",
        f"Machine: {machine()}. `.venv/bin/python bench/deploy.py` "
        f"(median of {args.runs} runs; ansible-playbook median of {args.ansible_runs} "
        "runs, it takes seconds per run).",
        "",
        "| workshop | files (rendered) | ours cold ms | ours warm ms | ansible ms | "
        "cp -a ms | ansible / ours warm | warm / cp -a |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="wod-bench-") as tmp:
        work = Path(tmp)
        for workshop in WORKSHOPS:
            src = FIXTURES / workshop
            nfiles = sum(1 for p in src.rglob("*") if p.is_file())
            nrender = len(template_files(src))
            w = work / workshop
            w.mkdir()
            cold, warm = bench_ours(FIXTURES, workshop, w, args.runs)
            cp = bench_cp(src, w, args.runs)
            ans = bench_ansible(src, workshop, w, args.ansible_runs) if args.ansible_runs else None
            ratio = f"{ans / warm:,.0f}x" if ans else "n/a"
            lines.append(
                f"| {workshop} | {nfiles} ({nrender}) | {cold:.1f} | {warm:.1f} | "
                f"{f'{ans:,.0f}' if ans else 'n/a'} | {cp:.1f} | {ratio} | "
                f"{warm / cp:.2f}x |"
            )
            print(lines[-1], flush=True)
            shutil.rmtree(w, ignore_errors=True)
        lines += [
            "",
            "Scaling with the number and size of files (synthetic workshops, warm):",
            "",
            "| workshop | ours warm ms | cp -a ms | ours / cp -a |",
            "|---|---|---|---|",
        ]
        for label, ours, cp in bench_scaling(work, args.runs):
            lines.append(f"| {label} | {ours:.1f} | {cp:.1f} | {ours / cp:.2f}x |")
            print(lines[-1], flush=True)
        lines += [
            "",
            "Students in a row (WKSHP-Docker101, one `Content`, cold start included):",
            "",
            "| students | total ms | ms per student |",
            "|---|---|---|",
        ]
        for count, total in bench_students(FIXTURES, "WKSHP-Docker101", work):
            lines.append(f"| {count} | {total:.0f} | {total / count:.1f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", text)


def write_section(path: Path, section: str) -> None:
    """Replace (or add) the "Content deployment" section, keeping the others."""
    current = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start = current.find("## Content deployment")
    if start == -1:
        current = current.rstrip("\n") + "\n\n" + section
    else:
        end = current.find("\n## ", start + 1)
        rest = current[end + 1 :] if end != -1 else ""
        current = current[:start] + section + ("\n" + rest if rest else "")
    path.write_text(current)


if __name__ == "__main__":
    main()
