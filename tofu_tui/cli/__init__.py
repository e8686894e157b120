"""`tofu-tui`: one entry point for the console, the daemon, one-shot runs and the
local dashboard server's admin commands.

Each command family lives in its own module and registers itself here; heavy imports
(Textual, FastAPI) happen inside the commands so `tofu-tui run` starts fast.
"""

from __future__ import annotations

import sys

import click

from tofu_tui import __version__
from tofu_tui.cli import demo_cmd, run_cmd, server_cmd, service_cmd, station_cmd


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--headless", is_flag=True, help="Run the unattended station daemon (no UI).")
@click.version_option(__version__, prog_name="tofu-tui")
@click.pass_context
def cli(ctx: click.Context, headless: bool) -> None:
    """Terminal station console for hardware test benches.

    With no command: the operator console, attached to the running station daemon
    if there is one. With --headless: the station daemon itself.
    """
    if ctx.invoked_subcommand is not None:
        return
    if headless:
        from tofu_tui.headless import run_daemon

        sys.exit(run_daemon())
    from tofu_tui.tui.launch import run_console

    sys.exit(run_console())


run_cmd.register(cli)
station_cmd.register(cli)
server_cmd.register(cli)
service_cmd.register(cli)
demo_cmd.register(cli)


def main() -> None:
    try:
        result = cli.main(prog_name="tofu-tui", standalone_mode=False)
    except click.UsageError as exc:
        # cli.md: one or two plain sentences on stderr that say what to do, exit 2 (not
        # click's usage block): what was wrong, then where the help is.
        where = f" See `{exc.ctx.command_path} --help`." if exc.ctx is not None else ""
        click.echo(f"Error: {exc.format_message()}{where}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    # Commands end with sys.exit; an int here is the code of click's own Exit (--help, --version).
    sys.exit(result if isinstance(result, int) else 0)
