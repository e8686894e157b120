"""`tofu-tui`: one entry point for the console, the daemon, one-shot runs and the
local dashboard server's admin commands.

Each command family lives in its own module and registers itself here; heavy imports
(Textual, FastAPI) happen inside the commands so `tofu-tui run` starts fast.
"""

from __future__ import annotations

import importlib
import sys

import click

from tofu_tui import __version__

# Command name -> the module that registers it (`register(group)`): a module is
# imported only when one of its commands runs, or for the full --help.
# tests/test_cli_commands.py checks this against what the modules register.
COMMAND_MODULES = {
    "run": "run_cmd",
    "login": "station_cmd",
    "logout": "station_cmd",
    "whoami": "station_cmd",
    "queue": "station_cmd",
    "status": "station_cmd",
    "pull": "station_cmd",
    "doctor": "station_cmd",
    "server": "server_cmd",
    "service": "service_cmd",
    "uninstall": "service_cmd",
    "demo": "demo_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMAND_MODULES:
            register(self, COMMAND_MODULES[cmd_name])
            command = super().get_command(ctx, cmd_name)
        return command


def register(group: click.Group, module: str) -> None:
    importlib.import_module(f"tofu_tui.cli.{module}").register(group)


@click.group(
    cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}
)
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
