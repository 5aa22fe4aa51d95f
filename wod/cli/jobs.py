"""``wod jobs``: list jobs, show one (steps, timings, output), retry, prune."""

from __future__ import annotations

import click

from wod.cli import AGE, Context, echo_json, json_option, pass_ctx, reported, when
from wod.ops import jobs as ops

COMMANDS = ["jobs"]


def _seconds(value: float | None) -> str:
    return f"{value:.3f}s" if value is not None else "-"


@click.group("jobs", invoke_without_command=True)
@json_option
@click.option("--status", type=click.Choice(ops.STATUSES), help="Only jobs in this state.")
@click.option("--limit", default=50, show_default=True, help="Newest N jobs.")
@click.pass_context
def jobs(click_ctx: click.Context, as_json: bool, status: str | None, limit: int) -> None:
    """List jobs, newest first (subcommands: show, retry, prune, rejections)."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.find_object(Context)
    with reported():
        found = ops.list_jobs(ops.open_queue(ctx.settings), status=status, limit=limit)
    if as_json:
        echo_json([ops.job_record(j) for j in found])
        return
    click.echo(
        f"{'ID':>6}  {'STATUS':<7} {'VERB':<7} {'STUDENT':<8} {'CUST':>6}  "
        f"{'WORKSHOP':<24} {'TRIES':>5} {'SECONDS':>8}  {'CREATED':<25}  REASON"
    )
    for j in found:
        click.echo(
            f"{j.id:>6}  {j.status:<7} {j.verb:<7} {ops.students(j):<8} "
            f"{j.request.customer:>6}  {j.request.workshop:<24} {j.attempts:>5} "
            f"{_seconds(j.seconds):>8}  {when(j.created):<25}  {j.reason}"
        )


@jobs.command("show")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
def show(ctx: Context, job_id: int, as_json: bool) -> None:
    """One job: request, state, every step with its timing and output."""
    with reported():
        job = ops.show_job(ops.open_queue(ctx.settings), job_id)
    if as_json:
        echo_json(ops.job_record(job, steps=True))
        return
    r = job.request
    click.echo(
        f"job {job.id}: {job.verb} student {ops.students(job)} customer {r.customer} "
        f"workshop {r.workshop}" + (f" <{r.email}>" if r.email else "")
    )
    click.echo(f"  status   {job.status}" + (f" — {job.reason}" if job.reason else ""))
    click.echo(f"  channel  {r.channel}; attempts {job.attempts}; worker {job.worker or '-'}")
    click.echo(
        f"  created  {when(job.created)}; started {when(job.started)}; "
        f"finished {when(job.finished)}; took {_seconds(job.seconds)}"
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
@json_option
@pass_ctx
def retry(ctx: Context, job_id: int, as_json: bool) -> None:
    """Queue a failed job again (a running `wod serve` picks it up)."""
    with reported():
        job = ops.retry_job(ops.open_queue(ctx.settings), job_id)
    if as_json:
        echo_json(ops.job_record(job))
        return
    click.echo(f"job {job.id} queued again")


@jobs.command("prune")
@click.option(
    "--older-than",
    "age",
    type=AGE,
    default="90d",
    show_default=True,
    help="Age of finished jobs and rejections to forget (w, d, h, m or s).",
)
@json_option
@pass_ctx
def prune(ctx: Context, age: float, as_json: bool) -> None:
    """Forget finished jobs and rejections older than --older-than (e.g. from cron)."""
    with reported():
        result = ops.prune_jobs(ops.open_queue(ctx.settings), age)
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"removed {result.jobs} finished job(s) and {result.rejections} rejection(s) "
        f"older than {when(result.before)}"
    )


@jobs.command("rejections")
@click.option("--limit", default=50, show_default=True, help="Newest N rejections.")
@json_option
@pass_ctx
def rejections(ctx: Context, limit: int, as_json: bool) -> None:
    """Refused requests, newest first, with the reason."""
    with reported():
        found = ops.list_rejections(ops.open_queue(ctx.settings), limit=limit)
    if as_json:
        echo_json([ops.rejection_record(r) for r in found])
        return
    click.echo(f"{'ID':>6}  {'AT':<25}  {'CHANNEL':<7}  REASON")
    for r in found:
        click.echo(f"{r.id:>6}  {when(r.at):<25}  {r.channel:<7}  {r.reason}")
