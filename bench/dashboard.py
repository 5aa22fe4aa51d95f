"""Benchmark: dashboard pages over a job database of 100,000 jobs (docs/benchmarks.md).

Fills a fresh job database (jobs as ``JobQueue.submit`` stores them, with six steps each;
mostly done, some failed, cancelled, queued), serves the real web app with uvicorn on a
loopback port and times each page as a logged-in browser would fetch it (httpx, one
connection): inside the app (server time) and request to last byte (client time).
Prints the section ``bench/run.py`` puts between the ``<!-- bench:dashboard -->`` markers.

    .venv/bin/python bench/dashboard.py [--jobs 100000] [--runs 30]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.plugins.paths import SAMPLES, serve_in_thread  # noqa: E402
from wod.queue import JobQueue  # noqa: E402
from wod.requests import parse_fields  # noqa: E402
from wod.settings import Settings  # noqa: E402
from wod.web.app import create_app  # noqa: E402

TOKEN = "bench-token"
WORKSHOPS = ("WKSHP-Sample101", "WKSHP-Sample201", "WKSHP-Sample301")
STEPS = ("workshop", "password", "erase", "appliance", "deploy", "report")
TARGET_MS = 200.0


def fill(settings: Settings, count: int) -> dict[str, int]:
    """``count`` jobs over 20 seats, newest last; returns ids worth fetching."""
    queue = JobQueue(settings.db_path)
    rng = random.Random(7)
    now = time.time() - count * 2.0
    jobs, steps = [], []
    for n in range(1, count + 1):
        verb = rng.choice(("CREATE", "CREATE", "CLEANUP", "RESET"))
        stdid = rng.randint(settings.user_min, settings.user_max)
        workshop = rng.choice(WORKSHOPS)
        subject = {
            "CREATE": f"CREATE {stdid} {n} user{n}@example.com",
            "CLEANUP": f"CLEANUP {stdid} {n}",
            "RESET": f"RESET {stdid} {n}",
        }[verb]
        request = parse_fields(subject, workshop, settings, channel=rng.choice(("smtp", "http")))
        roll = rng.random()
        status = "failed" if roll < 0.05 else "cancelled" if roll < 0.06 else "done"
        if n > count - 20:
            status = "queued"
        created = now + n * 2.0
        finished = None if status == "queued" else created + 0.05
        reason = "hook create-X.sh exited with status 3" if status == "failed" else ""
        jobs.append(
            (
                n,
                request.verb.value,
                stdid,
                stdid,
                request.customer,
                workshop,
                request.channel,
                json.dumps(request.to_dict()),
                status,
                0 if status == "queued" else 1,
                created,
                created,
                created if finished else None,
                finished,
                reason,
                "",
            )
        )
        if status != "queued":
            for k, name in enumerate(STEPS):
                steps.append((n, 1, name, "done", created + k * 0.01, 0.008, f"{name} ok"))
    db = sqlite3.connect(settings.db_path)
    with db:
        db.executemany(
            "INSERT INTO jobs (id, verb, stdid_min, stdid_max, customer, workshop, channel,"
            " request, status, attempts, not_before, created, started, finished, reason, output)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            jobs,
        )
        db.executemany(
            "INSERT INTO steps (job_id, attempt, name, status, started, seconds, output)"
            " VALUES (?,?,?,?,?,?,?)",
            steps,
        )
    db.execute("ANALYZE")
    db.close()
    queue.close()
    return {"newest": count, "middle": count // 2, "oldest": 1}


def timed(client: httpx.Client, path: str, runs: int) -> tuple[list[float], list[float]]:
    """Client times (request to last byte) and server times (the app's own handling, from
    the ``X-Server-Ms`` header the bench's middleware adds), in ms."""
    client.get(path)  # warm: templates compiled, pages in the OS cache
    total, server = [], []
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(path)
        total.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: HTTP {answer.status_code}")
        server.append(float(answer.headers["x-server-ms"]))
    return total, server


def timed_app(settings: Settings, queue: JobQueue):
    """The real app, with a middleware measuring the time spent inside it."""
    app = create_app(settings, queue)

    @app.middleware("http")
    async def server_time(request, call_next):  # noqa: ANN001, ANN202
        started = time.perf_counter()
        response = await call_next(request)
        body = b"".join([chunk async for chunk in response.body_iterator])
        ms = (time.perf_counter() - started) * 1000
        headers = dict(response.headers)
        headers["x-server-ms"] = f"{ms:.3f}"
        headers.pop("content-length", None)
        from starlette.responses import Response

        return Response(body, status_code=response.status_code, headers=headers)

    return app


def pct(times: list[float]) -> tuple[float, float]:
    """(median, p95) of sorted ``times``."""
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wod-bench-dash-") as tmp:
        settings = Settings(
            state_dir=Path(tmp) / "state",
            students_dir=Path(tmp) / "homes",
            notebooks_dir=SAMPLES,
            accounts="directory",
            hub_url="",
            apidb_url="http://127.0.0.1:9/api",  # nothing listens: probed in the background
            http_token=TOKEN,
            demo=True,
            user_min=1,
            user_max=20,
        )
        started = time.perf_counter()
        ids = fill(settings, args.jobs)
        fill_s = time.perf_counter() - started
        size = settings.db_path.stat().st_size
        queue = JobQueue(settings.db_path)
        pages = [
            ("job list, first page (50)", "/jobs"),
            ("job list, a page in the middle (keyset)", f"/jobs?before={ids['middle']}"),
            ("job list, last page", "/jobs?before=40"),
            ("filter status=failed", "/jobs?status=failed"),
            ("filter verb + workshop", "/jobs?verb=CLEANUP&workshop=WKSHP-Sample201"),
            ("filter seat=7", "/jobs?seat=7"),
            ("filter text (one window: newest 20,000 jobs)", f"/jobs?text=user{ids['middle']}%40"),
            ("job page", f"/jobs/{ids['middle']}"),
            ("Now", "/"),
            ("Workshops (3, render check cached)", "/workshops"),
            ("Seats grid (20 seats, one pass back to each seat's last reset)", "/seats"),
            ("/metrics", "/metrics"),
        ]
        rows = []
        with serve_in_thread(timed_app(settings, queue), "bench-dashboard") as port:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                assert client.post("/login", data={"token": TOKEN}).status_code == 303
                for label, path in pages:
                    runs = args.runs if "Seats" not in label else max(5, args.runs // 6)
                    total, server = (sorted(t) for t in timed(client, path, runs))
                    rows.append((label, path, len(total), pct(server), pct(total)))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Setup: {args.jobs:,} jobs in a fresh job database ({size / 2**20:.0f} MiB, "
        f"{args.jobs * 0.99 * len(STEPS):,.0f} steps; filled in {fill_s:.1f} s), the real web "
        "app under uvicorn on loopback, one logged-in httpx client; time from request to last "
        "byte, and server time: inside the app (a bench-only middleware), warm. "
        f"{when}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs ({cpu}), load average after: {load}. "
        "`.venv/bin/python bench/dashboard.py`\n"
    )
    print("| page | path | n | server median ms | server p95 ms | client p95 ms | target |")
    print("|---|---|---|---|---|---|---|")
    for label, path, n, (median, p95), (_, client_p95) in rows:
        target = ""
        if path.startswith("/jobs") and "/jobs/" not in path:
            target = "met" if p95 < TARGET_MS else "MISSED"
            target += f" (server p95 < {TARGET_MS:.0f} ms)"
        print(
            f"| {label} | `{path}` | {n} | {median:.1f} | {p95:.1f} | {client_p95:.1f} | {target} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
