"""The lifecycle: one function per verb, reading like SPEC section 3.

``Lifecycle(services)`` is the runner the worker calls for every job: it recovers an
``[object Promise]`` student id if needed, then dispatches on the verb.  Verb functions
take ``(services, job, ctx, request)``; ``ctx.step(name)`` records each step's timing and
output in the job record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wod.lifecycle import steps
from wod.lifecycle.cleanup import cleanup
from wod.lifecycle.create import create
from wod.lifecycle.purge import purge
from wod.lifecycle.reset import reset
from wod.requests import Verb

if TYPE_CHECKING:
    from wod.services import Services
    from wod.settings import Settings

VERBS = {Verb.CREATE: create, Verb.CLEANUP: cleanup, Verb.RESET: reset, Verb.PURGE: purge}


class Lifecycle:
    """The job runner: ``Lifecycle(services)(job, ctx)``."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, job: Any, ctx: Any) -> None:
        request = job.request
        if request.recover_stdid:
            with ctx.step("recover-student"):
                request = steps.recover_student(self.services, job, request)
                ctx.log(request.notes[-1])
        VERBS[request.verb](self.services, job, ctx, request)


def make_runner(settings: Settings, queue: Any, metrics: Any = None) -> Lifecycle:
    """Build every service from ``settings`` and return the runner for the worker
    (``metrics``: a :class:`wod.metrics.PeerMetrics` timing the api-db/hub/LDAP calls)."""
    import nbformat  # noqa: F401  (heavy: loaded at start, not in the first CLEANUP)

    from wod.services import Services

    return Lifecycle(Services.from_settings(settings, queue, metrics))
