"""`tofu-tui` station commands: login, logout, whoami, status, pull, queue, doctor."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from tofu_tui.station.paths import StationPaths
    from tofu_tui.station.queue import UploadQueue


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _paths() -> StationPaths:
    from tofu_tui.station.paths import station_paths

    return station_paths()


def _open_queue() -> UploadQueue:
    from tofu_tui.station.config import ConfigError, load_config
    from tofu_tui.station.queue import UploadQueue
    from tofu_tui.station.state_db import StateDbError

    paths = _paths().ensure()
    try:
        installation = load_config(paths).installation_id
    except ConfigError:
        installation = ""
    try:
        return UploadQueue(paths, installation)
    except StateDbError as exc:
        _fail(str(exc))


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.command()
@click.option("--token", envvar="TOFU_TUI_TOKEN", help="Setup token from the dashboard (or set TOFU_TUI_TOKEN).")
@click.option("--url", "url", envvar="TOFU_TUI_URL", default=None, help="Dashboard URL.")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False), help="PEM bundle for a private CA.")
def login(token: str | None, url: str | None, ca_cert: str | None) -> None:
    """Redeem a setup token: this machine becomes the station it was made for."""
    from tofu_tui.station.config import ConfigError, load_config
    from tofu_tui.station.enroll import DEFAULT_SERVER_URL, EnrollError
    from tofu_tui.station.enroll import login as do_login

    if not token:
        _fail("Give the setup token with --token TOKEN or the TOFU_TUI_TOKEN variable; "
              "generate one from the dashboard (the station's page).", 2)
    paths = _paths()
    if url is None:
        try:
            url = load_config(paths).server_url
        except ConfigError:
            url = DEFAULT_SERVER_URL
    try:
        config = do_login(paths, token, url, os.path.abspath(ca_cert) if ca_cert else None)
    except EnrollError as exc:
        _fail(str(exc))
    click.echo(f"Logged in as station {config.station_name or config.station_id} on {config.server_url}.")


@click.command()
def logout() -> None:
    """Forget this station's key (queued runs and deployments stay)."""
    from tofu_tui.station.enroll import logout as do_logout

    if do_logout(_paths()):
        click.echo("Logged out: the station key was removed. Queued runs stay until you log in again.")
    else:
        click.echo("Not logged in.")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def whoami(as_json: bool) -> None:
    """Show the station, its server and whether its key still works."""
    from tofu_tui.station.api_client import ApiError, Unauthorized
    from tofu_tui.station.config import ConfigError
    from tofu_tui.station.enroll import client_for

    try:
        config, client = client_for(_paths())
    except ConfigError as exc:
        _fail(str(exc))
    info: dict[str, Any] = {"station_id": config.station_id, "station_name": config.station_name,
                            "server_url": config.server_url, "organization_slug": config.organization_slug}
    code = 0
    with client:
        try:
            who = client.whoami()
            info.update(key="valid", auth_type=who.auth_type, station_name=who.station_name or config.station_name)
        except Unauthorized:
            info["key"] = "revoked"
            code = 1
        except ApiError as exc:
            info["key"] = "unknown"
            info["error"] = exc.message
            code = 1
    if as_json:
        _print_json(info)
    else:
        click.echo(f"Station: {info['station_name']} ({info['station_id']})")
        click.echo(f"Server:  {info['server_url']}")
        if info["key"] == "valid":
            click.echo("Key:     valid")
        elif info["key"] == "revoked":
            click.echo("Key:     revoked. Generate a new setup token from the dashboard and run `tofu-tui login`.")
        else:
            click.echo(f"Key:     not checked: {info['error']}")
    sys.exit(code)


# --- queue ------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="With no command: `queue ls --json`.")
@click.pass_context
def queue(ctx: click.Context, as_json: bool) -> None:
    """Inspect and steer the offline upload queue (default: ls)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(queue_ls, as_json=as_json)


@queue.command("ls")
@click.option("--json", "as_json", is_flag=True, help="A JSON array on stdout.")
def queue_ls(as_json: bool) -> None:
    """List queued runs, oldest first."""
    q = _open_queue()
    entries = q.entries()
    if as_json:
        _print_json([entry.model_dump(mode="json") for entry in entries])
        return
    if not entries:
        click.echo("The upload queue is empty.")
        return
    click.echo(f"{'ID':>6}  {'STATE':8}  {'TRIES':>5}  {'OUTCOME':8}  {'SERIAL':16}  DETAIL")
    for e in entries:
        detail = e.last_error or ""
        if e.state == "backoff" and e.next_attempt_at:
            detail = f"next try {e.next_attempt_at:%H:%M:%S}Z: {detail}"
        click.echo(f"{e.id:>6}  {e.state:8}  {e.attempts:>5}  {e.outcome or '':8}  "
                   f"{(e.serial_number or '')[:16]:16}  {detail}")


@queue.command("get")
@click.argument("queue_id", type=int)
def queue_get(queue_id: int) -> None:
    """Show one entry: its state, the run body and its attachments (JSON)."""
    from tofu_tui.station.queue import QueueError

    try:
        _print_json(_open_queue().get(queue_id))
    except QueueError as exc:
        _fail(str(exc))


@queue.command("retry")
@click.argument("queue_id", type=int, required=False)
def queue_retry(queue_id: int | None) -> None:
    """Try parked (or backing-off) entries again now: one, or all."""
    from tofu_tui.station.queue import QueueError

    try:
        count = _open_queue().retry(queue_id)
    except QueueError as exc:
        _fail(str(exc))
    _notify_daemon_drain(queue_id)
    click.echo(f"{count} entr{'y' if count == 1 else 'ies'} will be tried again now.")


@queue.command("rm")
@click.argument("queue_id", type=int, required=False)
@click.option("--all", "remove_all", is_flag=True, help="Drop every entry.")
def queue_rm(queue_id: int | None, remove_all: bool) -> None:
    """Drop an entry: its run will never be uploaded (export it first to keep it)."""
    from tofu_tui.station.queue import QueueError

    if (queue_id is None) == (not remove_all):
        _fail("Give one queue ID or --all (not both).", 2)
    try:
        count = _open_queue().remove(None if remove_all else queue_id)
    except QueueError as exc:
        _fail(str(exc))
    click.echo(f"Removed {count} entr{'y' if count == 1 else 'ies'} from the upload queue.")


@queue.command("export")
@click.argument("queue_id", type=int)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="File to write (default: stdout).")
def queue_export(queue_id: int, out: str | None) -> None:
    """Write an entry's run body (the `POST /v2/runs` JSON) to a file or stdout."""
    from tofu_tui.station.queue import QueueError

    try:
        entry = _open_queue().get(queue_id)
    except QueueError as exc:
        _fail(str(exc))
    text = json.dumps(entry["payload"], indent=2)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
        click.echo(f"Wrote run {entry['client_run_ref']} to {out}.", err=True)
    else:
        click.echo(text)


def _notify_daemon_drain(queue_id: int | None) -> None:
    """Tell a running daemon to drain now (best effort: it drains every 5 s anyway)."""
    from tofu_tui.models.commands import QueueRetryCommand
    from tofu_tui.station.control import ControlError, send_command

    try:
        send_command(_paths(), QueueRetryCommand(queue_id=queue_id), timeout=2.0)
    except ControlError:
        pass


# --- status / pull / doctor ------------------------------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The StationStatus object as JSON.")
def status(as_json: bool) -> None:
    """Station, connectivity, linked procedures, queue and uptime."""
    from tofu_tui.station.control import ControlError, request_status
    from tofu_tui.station.snapshot import offline_status, render_status

    paths = _paths()
    try:
        snapshot = request_status(paths, timeout=5.0)
        running = True
    except ControlError:
        snapshot = offline_status(paths)
        running = False
    if as_json:
        data = snapshot.model_dump(mode="json")
        data["daemon_running"] = running
        _print_json(data)
    else:
        click.echo(render_status(snapshot, daemon_running=running))


@click.command()
def pull() -> None:
    """Sync deployments now (through the daemon when it runs)."""
    from tofu_tui.models.commands import PullCommand
    from tofu_tui.station.control import ControlError, NoDaemon, send_command

    paths = _paths()
    try:
        result = send_command(paths, PullCommand(), timeout=600.0)
    except NoDaemon:
        result = None  # sync in this process instead
    except ControlError as exc:
        _fail(f"{exc} Check `tofu-tui status`.")
    if result is not None:
        from tofu_tui.models.status import LinkedProcedure

        procedures = [LinkedProcedure.model_validate(p) for p in result.get("procedures", [])]
        for procedure in procedures:
            active = f"{procedure.active.sha[:12]} active" if procedure.active else "no version ready"
            click.echo(f"{procedure.name}: {active}")
            if procedure.staged is not None:
                staged = procedure.staged
                click.echo(f"  {staged.sha[:12]} {staged.status}" + (f": {staged.error}" if staged.error else ""))
        if not procedures:
            click.echo("No procedure is linked to this station.")
        return
    from tofu_tui.station.snapshot import pull_once

    try:
        lines = pull_once(paths)
    except Exception as exc:
        _fail(str(exc))
    for line in lines:
        click.echo(line)


@click.command()
def doctor() -> None:
    """Check credentials, server, clock, Git access, disk and the state database."""
    from tofu_tui.station.doctor import run_checks

    ok = True
    for check in run_checks(_paths()):
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"[{mark}] {check.name}: {check.detail}")
        ok = ok and check.ok
    sys.exit(0 if ok else 1)


def run_linked_procedure(procedure: str, *, unit: dict[str, str | None],
                         ui_values: dict[str, dict[str, Any]] | None, as_json: bool) -> int:
    """`tofu-tui run --procedure ID_OR_NAME`: the active deployment of a linked procedure,
    through the daemon when one runs, else with the station engine in this process.
    Returns the exit status of run-protocol.md."""
    import asyncio

    from tofu_tui.models.commands import RunCommand
    from tofu_tui.procedure.outcomes import EXIT_CODES
    from tofu_tui.procedure.render import HumanView, JsonView
    from tofu_tui.station.control import CommandRefused, ControlError, NoDaemon
    from tofu_tui.station.remote_run import run_in_process, run_via_daemon

    command = RunCommand(procedure_id=procedure, serial_number=unit.get("serial_number"),
                         part_number=unit.get("part_number"), revision_number=unit.get("revision_number"),
                         batch_number=unit.get("batch_number"), ui_values=ui_values)
    view: Any = JsonView(sys.stdout) if as_json else HumanView(sys.stdout, color=sys.stdout.isatty())
    paths = _paths()
    try:
        try:
            finished = asyncio.run(run_via_daemon(paths, command, view.on_event))
        except NoDaemon:
            finished = asyncio.run(run_in_process(paths, command, view.on_event))
    except CommandRefused as exc:
        click.echo(str(exc), err=True)
        return 2
    except ControlError as exc:
        click.echo(str(exc), err=True)
        return 1
    return EXIT_CODES[finished.outcome]


def register(group: click.Group) -> None:
    """Add this module's commands to the root group."""
    for command in (login, logout, whoami, queue, status, pull, doctor):
        group.add_command(command)
