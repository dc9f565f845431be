"""`worldgen doctor`: is this installation able to do what you are about to ask of it?"""

from __future__ import annotations

import click

MARKS = {"ok": "ok", "info": "--", "warn": "!!", "fail": "XX"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--problems", "only_problems", is_flag=True, help="Show only warnings and failures.")
def doctor(as_json, only_problems):
    """Check versions, devices, plugins, registered models, and what each command needs.

    Every problem comes with what to do about it. Nothing is loaded or downloaded: weights are
    checked for presence and a readable header only.
    """
    import json

    from ...doctor import SECTIONS, run_checks

    report = run_checks()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for section in SECTIONS:
        findings = [f for f in report.section(section) if not only_problems or f.status in ("warn", "fail")]
        if not findings:
            continue
        click.echo(f"{section}:")
        width = max(len(f.name) for f in findings)
        for f in findings:
            click.echo(f"  {MARKS[f.status]:<2} {f.name:<{width}}  {f.detail}")
            if f.fix and f.status in ("warn", "fail", "info"):
                click.echo(f"     {'':<{width}}  -> {f.fix}")
    failures = sum(f.status == "fail" for f in report.findings)
    warnings_ = sum(f.status == "warn" for f in report.findings)
    if failures or warnings_:
        click.echo(f"{failures} failure(s), {warnings_} warning(s): see the -> lines")
    else:
        click.echo("no problems found")


commands = [doctor]
