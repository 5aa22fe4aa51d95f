"""What this installation is: the release and the job database schema it writes
(``wod --version``; an upgrade migrates the database to this schema at the first start,
an older release refuses a newer database)."""

from __future__ import annotations

from wod import __version__
from wod.queue import SCHEMA_VERSION


def version_text() -> str:
    return f"{__version__} (job database schema {SCHEMA_VERSION})"
