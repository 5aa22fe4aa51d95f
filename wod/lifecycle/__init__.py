"""The lifecycle: one function per verb, reading like SPEC section 3.

``Lifecycle(services)`` is the runner the worker calls for every job: it recovers an
``[object Promise]`` student id if needed, then dispatches on the verb.  Verb functions
take ``(services, ctx, request)``: ``ctx`` is the typed job context
(:class:`wod.lifecycle.context.JobContext`: the request, the attempt, earlier steps and
jobs, ``ctx.step(name)`` recording each step's timing and output).  The lifecycle never
reads the queue.
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
    from wod.lifecycle.context import JobContext, QueuedJob
    from wod.services import Services
    from wod.settings import Settings

VERBS = {Verb.CREATE: create, Verb.CLEANUP: cleanup, Verb.RESET: reset, Verb.PURGE: purge}


class Lifecycle:
    """The job runner: ``Lifecycle(services)(job, ctx)``."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, job: QueuedJob, ctx: JobContext) -> None:
        request = ctx.request
        if request.recover_stdid:
            with ctx.step("recover-student"):
                request = steps.recover_student(self.services, ctx, request)
                ctx.log(request.notes[-1])
        VERBS[request.verb](self.services, ctx, request)


def make_runner(settings: Settings, queue: object = None, metrics: Any = None) -> Lifecycle:
    """Build every service from ``settings`` and return the runner for the worker
    (``metrics``: a :class:`wod.metrics.PeerMetrics` timing the api-db/hub/LDAP calls).
    ``queue`` is the runner factory's second argument (``wod serve --runner``); the
    lifecycle does not use it: the worker gives each job its context."""
    from wod.services import Services

    return Lifecycle(Services.from_settings(settings, metrics))
