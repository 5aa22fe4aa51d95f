"""Run every benchmark in ``bench/`` and update docs/benchmarks.md (``make bench``).

Each benchmark runs as its own process.  ``bench/deploy.py`` writes its own section
("Content deployment"); ``bench/e2e.py`` prints its section, which is placed between the
``<!-- bench:e2e -->`` markers, ``bench/dashboard.py``'s between the
``<!-- bench:dashboard -->`` markers; the machine facts go between ``<!-- bench:machine -->``
markers.  Everything else in the file is kept as it is.

    .venv/bin/python bench/run.py [--only e2e|deploy|dashboard] [--e2e-args "--runs 50"]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
E2E_HEADING = "## End to end: CREATE by mail to customer active (issue 2)"
DASHBOARD_HEADING = "## Dashboard pages over 100,000 jobs (issue 10)"


def machine_facts() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "\n".join(
            [
                f"Last `make bench`: {now}.",
                "",
                "| fact | value |",
                "|---|---|",
                f"| CPUs (`nproc`) | {os.cpu_count()} |",
                f"| CPU model | {cpu} |",
                f"| RAM | {mem_kb / 1024 / 1024:.1f} GiB |",
                f"| Python | {platform.python_version()} ({sys.executable}) |",
                f"| kernel | {platform.system()} {platform.release()} |",
            ]
        )
        + "\n"
    )


def replace_marked(text: str, name: str, heading: str, body: str, *, first: bool) -> str:
    """Put ``body`` between ``<!-- bench:name -->`` markers under ``heading``; add the
    section (at the top, or at the end) if the markers are not there yet."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        return head + block + tail
    section = f"{heading}\n\n{block}\n"
    if first:
        title, sep, rest = text.partition("\n\n")
        return f"{title}{sep or chr(10) * 2}{section}\n{rest}".rstrip("\n") + "\n"
    return text.rstrip("\n") + "\n\n" + section


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    print("$", shlex.join(argv), flush=True)
    return subprocess.run(argv, cwd=ROOT, text=True, stdout=subprocess.PIPE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["e2e", "deploy", "dashboard"])
    parser.add_argument("--e2e-args", default="", help="extra arguments for bench/e2e.py")
    parser.add_argument("--deploy-args", default="", help="extra arguments for bench/deploy.py")
    parser.add_argument(
        "--dashboard-args", default="", help="extra arguments for bench/dashboard.py"
    )
    args = parser.parse_args()
    failed = []
    deploy = ROOT / "bench" / "deploy.py"
    if args.only in (None, "deploy") and deploy.exists():
        done = run([sys.executable, str(deploy), *shlex.split(args.deploy_args)])
        print(done.stdout)
        if done.returncode:
            failed.append("deploy")
    # deploy.py rewrites the file itself: read it only now.
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if args.only in (None, "e2e"):
        done = run([sys.executable, str(ROOT / "bench" / "e2e.py"), *shlex.split(args.e2e_args)])
        print(done.stdout)
        if done.returncode:
            failed.append("e2e")
        else:
            text = DOC.read_text() if DOC.exists() else text
            text = replace_marked(text, "e2e", E2E_HEADING, done.stdout, first=False)
    if args.only in (None, "dashboard"):
        bench = ROOT / "bench" / "dashboard.py"
        done = run([sys.executable, str(bench), *shlex.split(args.dashboard_args)])
        print(done.stdout)
        if done.returncode:
            failed.append("dashboard")
        else:
            text = replace_marked(text, "dashboard", DASHBOARD_HEADING, done.stdout, first=False)
    text = replace_marked(text, "machine", "## Machine", machine_facts(), first=True)
    DOC.write_text(text)
    print(f"updated {DOC.relative_to(ROOT)}")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
