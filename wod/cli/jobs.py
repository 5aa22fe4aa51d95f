"""``wod jobs``: list jobs, show one (steps, timings, output), retry a failed one."""

from __future__ import annotations

import json
import time

import click

from wod.cli import Context, pass_ctx
from wod.queue import STATUSES, Job, JobQueue, NotRetryable, UnknownJob

COMMANDS = ["jobs"]


def _queue(ctx: Context) -> JobQueue:
    path = ctx.settings.db_path
    if not path.exists():
        raise click.ClickException(f"no job database at {path} (is state_dir right?)")
    return JobQueue(path)


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def _students(job: Job) -> str:
    r = job.request
    if r.stdid is None:
        return "?"
    return f"{r.stdid},{r.stdid_max}" if r.is_range else str(r.stdid)


def _seconds(value: float | None) -> str:
    return f"{value:.3f}s" if value is not None else "-"


@click.group("jobs", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this state.")
@click.option("--limit", default=50, show_default=True, help="Newest N jobs.")
@click.pass_context
def jobs(click_ctx: click.Context, as_json: bool, status: str | None, limit: int) -> None:
    """List jobs, newest first (subcommands: show, retry)."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.find_object(Context)
    found = _queue(ctx).jobs(status=status, limit=limit)
    if as_json:
        click.echo(json.dumps([j.to_dict() for j in found], indent=2))
        return
    click.echo(
        f"{'ID':>6}  {'STATUS':<7} {'VERB':<7} {'STUDENT':<8} {'CUST':>6}  "
        f"{'WORKSHOP':<24} {'TRIES':>5} {'SECONDS':>8}  {'CREATED':<19}  REASON"
    )
    for j in found:
        click.echo(
            f"{j.id:>6}  {j.status:<7} {j.verb:<7} {_students(j):<8} {j.request.customer:>6}  "
            f"{j.request.workshop:<24} {j.attempts:>5} {_seconds(j.seconds):>8}  "
            f"{_when(j.created):<19}  {j.reason}"
        )


@jobs.command("show")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def show(ctx: Context, job_id: int, as_json: bool) -> None:
    """One job: request, state, every step with its timing and output."""
    try:
        job = _queue(ctx).job(job_id)
    except UnknownJob:
        raise click.ClickException(f"no job {job_id}") from None
    if as_json:
        click.echo(json.dumps(job.to_dict(steps=True), indent=2))
        return
    r = job.request
    click.echo(
        f"job {job.id}: {job.verb} student {_students(job)} customer {r.customer} "
        f"workshop {r.workshop}" + (f" <{r.email}>" if r.email else "")
    )
    click.echo(f"  status   {job.status}" + (f" — {job.reason}" if job.reason else ""))
    click.echo(f"  channel  {r.channel}; attempts {job.attempts}; worker {job.worker or '-'}")
    click.echo(
        f"  created  {_when(job.created)}; started {_when(job.started)}; "
        f"finished {_when(job.finished)}; took {_seconds(job.seconds)}"
    )
    for note in r.notes:
        click.echo(f"  note     {note}")
    if job.steps:
        click.echo("  steps:")
    for step in job.steps:
        click.echo(
            f"    [{step.attempt}] {step.name:<18} {step.status:<11} {_seconds(step.seconds):>9}"
        )
        for line in step.output.splitlines():
            click.echo(f"        {line}")
    if job.output:
        click.echo("  output:")
        for line in job.output.splitlines():
            click.echo(f"    {line}")


@jobs.command("retry")
@click.argument("job_id", type=int)
@pass_ctx
def retry(ctx: Context, job_id: int) -> None:
    """Queue a failed job again (a running `wod serve` picks it up)."""
    try:
        job = _queue(ctx).retry(job_id)
    except UnknownJob:
        raise click.ClickException(f"no job {job_id}") from None
    except NotRetryable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"job {job.id} queued again")


def _age(text: str) -> float:
    """``90d``, ``12h``, ``30m`` or seconds -> seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise click.BadParameter(f"expected e.g. 90d, 12h or 30m, got {text!r}") from None


@jobs.command("prune")
@click.option(
    "--older-than",
    "age",
    default="90d",
    show_default=True,
    help="Age of finished jobs and rejections to forget (d, h, m or s).",
)
@pass_ctx
def prune(ctx: Context, age: str) -> None:
    """Forget finished jobs and rejections older than --older-than (e.g. from cron)."""
    removed, rejections = _queue(ctx).prune(time.time() - _age(age))
    click.echo(f"removed {removed} finished job(s) and {rejections} rejection(s) older than {age}")
