"""`tofu-tui service install|uninstall|start|stop|status` and `tofu-tui uninstall`."""

from __future__ import annotations

import os
import sys

import click


def _fail(message: str, code: int = 1) -> None:
    click.echo(message, err=True)
    sys.exit(code)


@click.group("service")
def service() -> None:
    """The OS service that runs the station daemon (`tofu-tui --headless`) at boot.

    systemd on Linux (a system unit as root, a user unit otherwise), launchd on
    macOS, a scheduled task on Windows.
    """


@service.command("install")
@click.option(
    "--executable",
    type=click.Path(dir_okay=False),
    help="The tofu-tui program the service runs (default: this one).",
)
@click.option(
    "--stop-timeout",
    type=click.IntRange(min=10),
    default=None,
    help="Seconds a stop waits for the run in flight to finish before killing (default 1800).",
)
def install_cmd(executable: str | None, stop_timeout: int | None) -> None:
    """Install (or update) and start the service."""
    from tofu_tui.station import service as svc

    if executable and not os.access(executable, os.X_OK):
        _fail(f"{executable} is not an executable file: pass the path of a tofu-tui program.", 2)
    try:
        manager = svc.manager_for_platform()
        spec = svc.ServiceSpec(
            command=svc.daemon_command(executable),
            home=os.environ.get("TOFU_TUI_HOME") or None,
            system=getattr(manager, "system", False),
            stop_timeout_s=stop_timeout or svc.DEFAULT_STOP_TIMEOUT_S,
            user=svc.current_user() if sys.platform == "win32" else None,
        )
        hints = manager.install(spec)
    except svc.ServiceError as exc:
        _fail(f"The service was not installed. {exc}")
        return
    click.echo(f"Installed and started the {manager.kind} ({manager.path}).")
    for hint in hints:
        click.echo(hint)


@service.command("uninstall")
def uninstall_service_cmd() -> None:
    """Stop the service and remove it (config and data stay)."""
    from tofu_tui.station import service as svc

    try:
        manager = svc.manager_for_platform()
        manager.uninstall()
    except svc.ServiceError as exc:
        _fail(str(exc))
        return
    click.echo(f"Removed the {manager.kind}.")


@service.command("start")
def start_cmd() -> None:
    """Start the service."""
    from tofu_tui.station import service as svc

    try:
        svc.manager_for_platform().start()
    except svc.ServiceError as exc:
        _fail(str(exc))
    click.echo("Started.")


@service.command("stop")
def stop_cmd() -> None:
    """Stop the service; the run in flight finishes first."""
    from tofu_tui.station import service as svc

    try:
        svc.manager_for_platform().stop()
    except svc.ServiceError as exc:
        _fail(str(exc))
    click.echo("Stopped.")


@service.command("status")
def status_cmd() -> None:
    """Whether the service is installed and running (exit 3 when it is not running)."""
    from tofu_tui.station import service as svc

    try:
        manager = svc.manager_for_platform()
        status = manager.status()
    except svc.ServiceError as exc:
        _fail(str(exc))
        return
    if not status.installed:
        click.echo(f"The {manager.kind} is not installed (tofu-tui service install).")
        sys.exit(3)
    click.echo(f"{manager.kind}: {status.detail} ({status.path})")
    sys.exit(0 if status.running else 3)


@click.command("uninstall")
@click.option("--keep-data", is_flag=True, help="Keep the upload queue, run history and deployments.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def uninstall_cmd(keep_data: bool, yes: bool) -> None:
    """Remove the service, the station's config and credentials and (unless
    --keep-data) its queue, run history and deployments."""
    from tofu_tui.station import service as svc
    from tofu_tui.station import uninstall as un

    plan = un.removal_plan(keep_data=keep_data)
    # The program's own files last (it is running from them); Windows cannot delete them.
    program = un.installed_program() if sys.platform != "win32" else []
    plan.remove += program
    try:
        manager: svc.ServiceManager | None = svc.manager_for_platform()
    except svc.ServiceError:
        manager = None
    service_present = manager is not None and manager.path.exists()
    if not plan.remove and not service_present:
        click.echo("Nothing to remove: no service, config or data found.")
        return
    click.echo("This removes:")
    if service_present and manager is not None:
        click.echo(f"  the {manager.kind} ({manager.path})")
    for path in plan.remove:
        click.echo(f"  {path}")
    for path in plan.keep:
        click.echo(f"and keeps {path}")
    waiting = 0 if keep_data else un.runs_not_uploaded()
    if waiting:
        click.echo(f"including {waiting} run{'s' if waiting != 1 else ''} not uploaded yet: save them first with "
                   "`tofu-tui queue export`, or keep them with --keep-data.")
    if not yes:
        if not sys.stdin.isatty():
            _fail("Not removing anything: confirm with --yes (standard input is not a terminal).", 2)
        if not click.confirm("Go ahead?", default=False):
            _fail("Nothing removed.")
    if service_present and manager is not None:
        try:
            manager.uninstall()
        except svc.ServiceError as exc:
            _fail(f"{exc} Nothing else was removed.")
    if not un.daemon_stopped():
        _fail(
            "A station daemon is still running on this station's data (started by hand?): stop it "
            "(Ctrl-C, or kill its process) and run `tofu-tui uninstall` again. Its config and data "
            "were not removed."
        )
    for folder in un.execute(plan):
        if not any(kept.is_relative_to(folder) for kept in plan.keep):
            click.echo(f"Left {folder} in place: it holds files tofu-tui did not make.")
    click.echo("tofu-tui's service, config" + ("" if keep_data else " and data") + " are removed.")
    if not program:
        click.echo(
            "The program itself stays: remove it the way it was installed (pip uninstall "
            "tofu-tui, or the installer's folder and the tofu-tui link on your PATH)."
        )


def register(group: click.Group) -> None:
    """Add this module's commands to the root group."""
    group.add_command(service)
    group.add_command(uninstall_cmd)
