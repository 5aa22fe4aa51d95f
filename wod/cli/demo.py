"""``wod demo``: the main job once, end to end, on a fresh local install."""

from __future__ import annotations

from pathlib import Path

import click

COMMANDS = ["demo"]


@click.command("demo")
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Install folder (recreated if empty or an earlier demo).",
)
def demo(root: Path) -> None:
    """Register a participant, send the api-db's CREATE mail, show the deployed seat."""
    from wod.ops.demo import run_demo

    try:
        result = run_demo(root.resolve(), say=click.echo)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    except RuntimeError as exc:
        logs = f"{root}/serve.log, {root}/registry.log"
        raise click.ClickException(f"{exc} (logs in {logs})") from None
    job, s = result.job, result.settings
    click.echo(
        f"5. job #{job['id']} {job['status']} in {job['seconds'] * 1000:.0f} ms "
        f"(persisted {result.ack_ms:.1f} ms after the mail was sent; "
        f"mail to finished {result.total_ms:.0f} ms)"
    )
    click.echo("\n   step            ms  output")
    for step in job["steps"]:
        out = (step["output"] or "").strip().replace("\n", " | ")
        click.echo(f"   {step['name']:<12} {step['seconds'] * 1000:7.1f}  {out[:90]}")
    home = s.home(result.stdid)
    click.echo(f"\n6. deployed in {home}:")
    for name, size, mode in result.files:
        click.echo(f"   {mode}  {size:>7}  {name}")
    click.echo("\n   personalised lines of 1-Sample-Notebook.ipynb:")
    for line in result.excerpt:
        click.echo(f"     {line}")
    st, cu = result.student, result.customer
    click.echo("\n7. the registry (api-db) now holds:")
    click.echo(
        f"   student {st['id']}: username={st['username']} password={st['password']} "
        f"assigned={bool(st['assigned'])}"
    )
    click.echo(
        f"   customer {cu['id']}: email={cu['email']} active={bool(cu['active'])} "
        f"studentId={cu['studentId']}"
    )
    click.echo("   (the api-db would now e-mail these credentials to the participant)")
    cj, cs, cc = result.cleanup_job, result.cleanup_student, result.cleanup_customer
    click.echo(f"\n8. the session ends: sent 'CLEANUP {result.stdid} {cu['id']}' the same way")
    click.echo(
        f"9. CLEANUP job #{cj['id']} {cj['status']} in {cj['seconds'] * 1000:.0f} ms: steps "
        + ", ".join(step["name"] for step in cj["steps"])
    )
    click.echo(
        f"   registry: customer completionPercentage={cc.get('completionPercentage')} "
        f"cleaned={bool(cc['cleaned'])} active={bool(cc['active'])}; student "
        f"assigned={bool(cs['assigned'])}, password changed={cs['password'] != st['password']}"
    )
    click.echo(
        f"   home after CLEANUP (re-seeded skeleton): {', '.join(result.home_after_cleanup)}"
    )
    click.echo(
        f"\nEverything is kept in {result.root}: wod -c {result.root}/wod.yml jobs show "
        f"{job['id']} | seats"
    )
