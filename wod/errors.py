"""The project's exception tree, shared by every layer.

    WodError
    ├── Rejected          a request that must not be acted on (bad verb, id, workshop…);
    │                     never retried; ``reason`` is short and safe to show to a user
    ├── Permanent         a job step that failed for a reason retrying cannot fix
    │   │                 (hook exit code, template error, unknown workshop in the api-db…)
    │   └── HookFailed    a hook script exited non-zero or timed out (``kind``)
    ├── Transient         a fault that may go away (api-db/hub/LDAP unreachable, 5xx,
    │                     timeout); the queue retries the job with backoff
    └── Wait              not a fault: the job must wait (e.g. for the api-db to report a
                          customer cleaned); re-queued after ``delay`` without using an attempt

Services translate lower-layer errors (httpx, ldap3, OSError) into these at their boundary,
so the lifecycle and the queue only ever see this tree.  ``output`` carries captured
command output (a hook's stdout/stderr) for the job record.
"""

from __future__ import annotations


class WodError(Exception):
    def __init__(self, reason: str, *, output: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output

    def __str__(self) -> str:
        return self.reason


class Rejected(WodError):
    """A request refused before anything was changed."""


class Permanent(WodError):
    """A failure retrying cannot fix."""


class HookFailed(Permanent):
    """A hook script exited non-zero or ran past its timeout (``kind``: create, reset…)."""

    def __init__(self, reason: str, *, output: str = "", kind: str = "") -> None:
        super().__init__(reason, output=output)
        self.kind = kind


class Transient(WodError):
    """A failure worth retrying later (``delay`` seconds, if the raiser knows better)."""

    def __init__(self, reason: str, *, output: str = "", delay: float | None = None) -> None:
        super().__init__(reason, output=output)
        self.delay = delay


class Wait(WodError):
    """The job cannot proceed yet; run it again after ``delay`` seconds (not an attempt)."""

    def __init__(self, reason: str, *, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay
