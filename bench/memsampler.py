"""Run ``wod`` with a thread that writes the process's memory figures to a file.

``bench/reliability.py``'s leak check starts ``wod serve`` through this module so that a
growing RSS can be told apart: live Python objects (``gc``), the SQLite library's heap
(``sqlite3_memory_used``: page caches and statements of every connection) and the RSS.
If the first two stay flat while the RSS grows, the growth is the C allocator's (malloc
arenas and fragmentation), not a leak of the program.

    python bench/memsampler.py OUT.json -c wod.yml serve

``OUT.json`` is rewritten (atomically) every second with the latest sample.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path


def _sqlite_heap() -> ctypes._CFuncPtr | None:
    """``sqlite3_memory_used`` of the SQLite library Python's ``sqlite3`` module uses."""
    import _sqlite3

    for lib in (_sqlite3.__file__, "libsqlite3.so.0"):
        try:
            fn = ctypes.CDLL(lib).sqlite3_memory_used
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_int64
        return fn
    return None


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sample(out: Path, interval: float = 1.0) -> None:
    heap = _sqlite_heap()
    tmp = out.with_name(out.name + ".tmp")
    while True:
        figures = {
            "time": time.time(),
            "rss_kib": _rss_kib(),
            "python_objects": len(gc.get_objects()),
            "sqlite_heap_bytes": heap() if heap is not None else None,
            "threads": threading.active_count(),
        }
        tmp.write_text(json.dumps(figures))
        os.replace(tmp, out)
        time.sleep(interval)


def main() -> int:
    out = Path(sys.argv[1])
    threading.Thread(target=sample, args=(out,), name="memsampler", daemon=True).start()
    sys.argv = ["wod", *sys.argv[2:]]
    from wod.cli import main as wod_main

    wod_main()  # click exits the process
    return 0


if __name__ == "__main__":
    sys.exit(main())
