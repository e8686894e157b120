"""`tofu-tui demo`: the whole system on one machine, with nothing set up first."""

from __future__ import annotations

import sys

import click


@click.command("demo")
@click.option("--headless", is_flag=True, help="No console: run the procedure N times and print what reached the server.")
@click.option("--runs", "count", type=click.IntRange(min=1, max=1000), default=3, show_default=True,
              help="How many runs --headless makes.")
@click.option("--serve", is_flag=True, help="No console: keep the server and the station running until Ctrl-C.")
@click.option("--run-timeout", type=click.FloatRange(min=1), default=120, show_default=True,
              help="Seconds to wait for each run to reach the server.")
def demo(headless: bool, serve: bool, count: int, run_timeout: float) -> None:
    """Start a local server, a Git repository with the sample procedure and an
    enrolled station in a temporary folder; deploy the procedure; then open the
    console (or, --headless, run it N times through the station daemon; or, --serve,
    keep it all running for a second station to enroll).

    Everything it starts is stopped, and the folder removed, when it exits.
    """
    from tofu_tui import demo as demo_mod

    if headless and serve:
        click.echo("Choose one of --headless and --serve.", err=True)
        sys.exit(2)
    interactive = not headless and not serve

    def say(message: str) -> None:
        click.echo(message, err=interactive)

    try:
        with demo_mod.running_demo(say) as running:
            if not headless:
                say("Enroll a second station against this server (another terminal, within the hour;")
                say("drop --no-service on a real bench):")
                say("  " + running.second_station())
            if serve:
                say("Serving until Ctrl-C.")
                running.serve()
            if interactive:
                if sys.stdin.isatty():
                    click.prompt("Press Enter to open the console", default="", show_default=False, err=True)
                code = running.run_console()
                sys.exit(code)
            runs = running.run_headless(count, run_timeout)
            click.echo(f"{len(runs)} runs reached the server at {running.url}:")
            for run in runs:
                click.echo("  " + demo_mod.describe_run(run))
            if len(runs) != count:
                click.echo(f"Expected {count} runs on the server, found {len(runs)}.", err=True)
                sys.exit(1)
    except demo_mod.DemoError as exc:
        click.echo(f"The demo stopped: {exc}", err=True)
        sys.exit(1)
    except (KeyboardInterrupt, click.Abort):
        click.echo("Interrupted; everything the demo started is stopped.", err=True)
        sys.exit(130)


def register(group: click.Group) -> None:
    """Add this module's commands to the root group."""
    group.add_command(demo)
