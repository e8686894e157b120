"""`tofu-tui server …`: run the local dashboard and administer it over its HTTP API.

Every admin command finds the server and an admin key from `--url`/`--key`, the
environment (`TOFU_TUI_SERVER_URL`, `TOFU_TUI_SERVER_KEY`), the defaults that
`server init` saved in the data folder (`--data`), or else the data folder of the
server this user last initialised or started; `--json` prints exactly one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

DATA_HELP = "The server's data folder (holds its database and the admin defaults)."


class AdminClient:
    """The few HTTP calls the admin commands make."""

    def __init__(self, url: str, key: str) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=httpx.Timeout(60, connect=5)
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            fail(f"Cannot reach the server at {self.url} ({exc}). Start it with `tofu-tui server start --data DIR`, or pass --url.")
        if response.status_code >= 400:
            try:
                body = response.json()
                message = body.get("message") or response.text
            except ValueError:
                message = response.text or response.reason_phrase
            fail(f"The server refused ({response.status_code}): {message}")
        return response.json()

    def station_id(self, ident: str) -> str:
        return self._resolve("stations", ident, "station")

    def procedure_id(self, ident: str) -> str:
        return self._resolve("procedures", ident, "procedure")

    def _resolve(self, collection: str, ident: str, what: str) -> str:
        """An id, or the exact name of one item."""
        import httpx

        try:
            response = self.http.get(f"/api/v2/{collection}/{ident}")
        except httpx.TransportError as exc:
            fail(f"Cannot reach the server at {self.url} ({exc}). Start it with `tofu-tui server start --data DIR`, or pass --url.")
        if response.status_code == 200:
            return str(response.json()["id"])
        if response.status_code not in (404, 422):
            self.call("GET", f"/api/v2/{collection}/{ident}")
        matches: list[str] = []
        cursor: int | None = 0
        while cursor is not None:
            page = self.call("GET", f"/api/v2/{collection}", params={"search_query": ident, "limit": 100, "cursor": cursor})
            matches += [item["id"] for item in page["data"] if item["name"] == ident]
            cursor = page["meta"]["next_cursor"]
        if not matches:
            fail(f"No {what} with id or name {ident!r}: list them on the server, or check the spelling.")
        if len(matches) > 1:
            fail(f"Several {what}s are named {ident!r}: use its id instead.")
        return matches[0]


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(text)


def admin_options(func: Any) -> Any:
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(func)
    func = click.option("--key", envvar="TOFU_TUI_SERVER_KEY", help="An admin API key (default: the one saved in DIR).")(func)
    func = click.option("--url", envvar="TOFU_TUI_SERVER_URL", help="The server's URL (default: the one saved in DIR).")(func)
    func = click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
                        help=DATA_HELP + " Default: the server last initialised or started by this user.")(func)
    return func


def connect(data_dir: Path | None, url: str | None, key: str | None) -> AdminClient:
    from tofu_tui.server.defaults import current_data_dir, load_defaults

    if data_dir is None and not url and not key:
        data_dir = current_data_dir()  # the server this user last set up or started
    if data_dir is not None:
        defaults = load_defaults(data_dir)
        url = url or defaults.url
        key = key or defaults.api_key
    if not url or not key:
        raise click.UsageError(
            "Which server? Pass --data DIR (a folder set up by `tofu-tui server init`), or --url and --key."
        )
    return AdminClient(url, key)


def _local_repo(repo: str) -> str:
    """A local repository path is made absolute: the server resolves it, not this shell."""
    path = Path(repo).expanduser()
    if "://" not in repo and not repo.startswith("git@") and path.exists():
        return str(path.resolve())
    return repo


@click.group("server")
def server_group() -> None:
    """The bundled local dashboard: serve it and administer it."""


@server_group.command("init")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help=DATA_HELP)
@click.option("--db", "db_url", help="SQLAlchemy database URL (default: SQLite in DIR).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Host `server start` will listen on.")
@click.option("--port", default=8470, show_default=True, type=click.IntRange(1, 65535), help="Port `server start` will listen on.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def init_cmd(data_dir: Path, db_url: str | None, host: str, port: int, as_json: bool) -> None:
    """Create the server's database and print an admin API key (shown only once)."""
    from tofu_tui.server.admin import init_data_dir
    from tofu_tui.server.defaults import remember_current

    try:
        key, url = init_data_dir(data_dir, db_url=db_url, host=host, port=port)
    except Exception as exc:  # a bad --db URL, an unwritable folder
        fail(f"Cannot set up {data_dir}: {exc}")
    remember_current(data_dir)
    emit(
        as_json,
        {"api_key": key, "url": url},
        f"Server data folder ready: {data_dir}\nAdmin API key (shown once, also saved in {data_dir}/admin.toml):\n  {key}\n"
        f"Start the server with: tofu-tui server start --data {data_dir}",
    )


@server_group.command("start")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help=DATA_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8470, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@click.option("--db", "db_url", help="SQLAlchemy database URL, e.g. postgresql+psycopg://… (default: SQLite in DIR).")
@click.option("--public-url", help="The URL stations reach this server at, if not the one it listens on.")
@click.option("--log-level", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--workers", envvar="WEB_CONCURRENCY", default=1, show_default=True, type=int,
              help="Must be 1: the server runs in one process (see above).")
@click.option("--json", "as_json", is_flag=True,
              help='Once ready, print one JSON object: {"url", "data"} (and "api_key" when it made the first one).')
def start_cmd(data_dir: Path, host: str, port: int, db_url: str | None, public_url: str | None, log_level: str,
              workers: int, as_json: bool) -> None:
    """Serve the dashboard API until SIGINT or SIGTERM.

    One process serves everything: the live stream hub (the stations' open streams and
    the wake-ups that push their commands) lives in its memory, so the server cannot be
    split across uvicorn or gunicorn workers. For a bigger fleet, point --db at PostgreSQL.
    """
    if workers != 1:
        raise click.UsageError(
            f"tofu-tui server runs as one process (asked for {workers} workers): its live stream hub lives in "
            "memory. Drop --workers (or unset WEB_CONCURRENCY); for a bigger fleet use --db with PostgreSQL."
        )
    from tofu_tui.server.admin import create_user_key
    from tofu_tui.server.defaults import (
        AdminDefaults,
        load_defaults,
        remember_current,
        save_defaults,
    )
    from tofu_tui.server.runner import bind, serve, url_of
    from tofu_tui.server.settings import Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    defaults = load_defaults(data_dir)
    db_url = db_url or defaults.db_url
    try:
        sock = bind(host, port)
    except OSError as exc:
        fail(f"Cannot listen on {host}:{port} ({exc.strerror}): pick another --port, or stop what uses it.")
    url = url_of(sock)
    settings = Settings(data_dir=data_dir, db_url=db_url, public_url=public_url)
    new_key = None
    if defaults.api_key is None:
        # A newcomer who skipped `init`: make the first admin key now.
        new_key = create_user_key(settings, name="init")
    save_defaults(data_dir, AdminDefaults(url=public_url or url, api_key=defaults.api_key or new_key, db_url=db_url))
    remember_current(data_dir)

    def announce() -> None:
        if as_json:
            ready: dict[str, Any] = {"url": url, "data": str(data_dir)}
            if new_key:
                ready["api_key"] = new_key
            click.echo(json.dumps(ready))
        else:
            click.echo(f"tofu-tui server listening on {url} (data: {data_dir})", err=False)
            if new_key:
                click.echo(f"Admin API key (shown once, also saved in {data_dir}/admin.toml): {new_key}")
        sys.stdout.flush()

    try:
        serve(settings, sock, on_started=announce, log_level=log_level)
    except Exception as exc:
        fail(f"The server could not start: {exc}")
    click.echo("tofu-tui server stopped.", err=True)


@server_group.group("key")
def key_group() -> None:
    """Admin API keys."""


@key_group.command("create")
@admin_options
@click.option("--name", help="A label for the key.")
def key_create(data_dir: Path | None, url: str | None, key: str | None, as_json: bool, name: str | None) -> None:
    """Create another admin API key (shown only once)."""
    client = connect(data_dir, url, key)
    body = client.call("POST", "/api/v2/keys", json={"name": name})
    emit(as_json, {"id": body["id"], "api_key": body["api_key"]}, f"Admin API key (shown once):\n  {body['api_key']}")


@server_group.group("station")
def station_group() -> None:
    """Stations and their setup tokens."""


def _token(client: AdminClient, station_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.call("POST", f"/api/v2/stations/{station_id}/setup-token")
    return body


@station_group.command("create")
@click.argument("name")
@admin_options
def station_create(name: str, data_dir: Path | None, url: str | None, key: str | None, as_json: bool) -> None:
    """Create a station; print its id and an install command with a fresh setup token."""
    client = connect(data_dir, url, key)
    station_id = client.call("POST", "/api/v2/stations", json={"name": name})["id"]
    token = _token(client, station_id)
    emit(
        as_json,
        {"id": station_id, "token": token["token"], "expires_at": token["expires_at"], "install_command": token["install_command"]},
        f"Station {name!r} created: {station_id}\nOn the bench, within the hour (single use):\n  {token['install_command']}\n"
        f"or: tofu-tui login --token {token['token']} --url {client.url}",
    )


@station_group.command("token")
@click.argument("station")
@admin_options
def station_token(station: str, data_dir: Path | None, url: str | None, key: str | None, as_json: bool) -> None:
    """A fresh setup token (one hour, single use) and install command for STATION."""
    client = connect(data_dir, url, key)
    station_id = client.station_id(station)
    token = _token(client, station_id)
    emit(
        as_json,
        {"id": station_id, "token": token["token"], "expires_at": token["expires_at"], "install_command": token["install_command"]},
        f"Setup token for {station} (valid until {token['expires_at']}, single use):\n  {token['install_command']}",
    )


@server_group.group("procedure")
def procedure_group() -> None:
    """Procedures and their Git repositories."""


@procedure_group.command("create")
@click.argument("name")
@click.option("--repo", help="The Git repository: any URL git can fetch, or a local path.")
@click.option("--branch", default="main", show_default=True, help="The branch deployments follow by default.")
@click.option("--path", "subdir", help="Subfolder of the repository holding procedure.yaml.")
@admin_options
def procedure_create(
    name: str, repo: str | None, branch: str, subdir: str | None, data_dir: Path | None, url: str | None, key: str | None, as_json: bool
) -> None:
    """Create a procedure, linked to a Git repository."""
    client = connect(data_dir, url, key)
    body: dict[str, Any] = {"name": name}
    if repo:
        body["repository"] = {"url": _local_repo(repo), "branch": branch, "path": subdir}
    procedure_id = client.call("POST", "/api/v2/procedures", json=body)["id"]
    emit(as_json, {"id": procedure_id}, f"Procedure {name!r} created: {procedure_id}")


@server_group.command("link")
@click.argument("station")
@click.argument("procedure")
@admin_options
def link_cmd(station: str, procedure: str, data_dir: Path | None, url: str | None, key: str | None, as_json: bool) -> None:
    """Link PROCEDURE to STATION (ids or names); the station is told to pull."""
    client = connect(data_dir, url, key)
    body = client.call("POST", f"/api/v2/stations/{client.station_id(station)}/procedures", json={"procedure_id": client.procedure_id(procedure)})
    emit(as_json, body, f"Linked {procedure} to {station}.")


@server_group.command("unlink")
@click.argument("station")
@click.argument("procedure")
@admin_options
def unlink_cmd(station: str, procedure: str, data_dir: Path | None, url: str | None, key: str | None, as_json: bool) -> None:
    """Unlink PROCEDURE from STATION; a run in flight finishes on its version."""
    client = connect(data_dir, url, key)
    body = client.call("DELETE", f"/api/v2/stations/{client.station_id(station)}/procedures/{client.procedure_id(procedure)}")
    emit(as_json, body, f"Unlinked {procedure} from {station}.")


@server_group.command("deploy")
@click.argument("procedure")
@click.option("--ref", help="Branch, tag or commit sha (default: the head of the procedure's branch).")
@admin_options
def deploy_cmd(procedure: str, ref: str | None, data_dir: Path | None, url: str | None, key: str | None, as_json: bool) -> None:
    """Deploy a ref of PROCEDURE's repository and roll it out to its stations."""
    client = connect(data_dir, url, key)
    body: dict[str, Any] = {"procedure_id": client.procedure_id(procedure)}
    if ref:
        body["ref"] = ref
    dep = client.call("POST", "/api/v2/deployments", json=body)
    emit(as_json, {"id": dep["id"], "sha": dep["sha"]}, f"Deployed {dep['sha'][:12]} of {procedure}: deployment {dep['id']}")


@server_group.command("rollback")
@click.argument("procedure")
@click.argument("deployment")
@admin_options
def rollback_cmd(procedure: str, deployment: str, data_dir: Path | None, url: str | None, key: str | None, as_json: bool) -> None:
    """Make an earlier DEPLOYMENT of PROCEDURE active again."""
    client = connect(data_dir, url, key)
    dep = client.call("POST", f"/api/v2/procedures/{client.procedure_id(procedure)}/rollback", json={"deployment_id": deployment})
    emit(as_json, {"id": dep["id"], "sha": dep["sha"]}, f"{procedure} is back on {dep['sha'][:12]} (deployment {dep['id']}).")


COMMAND_NAMES = ["Run", "Stop", "Kill", "Pull", "UiResponse", "QueueRetry", "QueueDrop", "Exit"]


def _command_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    for name in COMMAND_NAMES:
        if name.lower() == value.lower():
            return name
    raise click.BadParameter(f"{value!r} is not a command; use one of {', '.join(COMMAND_NAMES)}.")


@server_group.command("command")
@click.argument("station")
@click.argument("name", metavar="NAME", callback=_command_name)
@click.option("--procedure", help="Run: the procedure (id or name).")
@click.option("--serial", help="Run: the unit's serial number.")
@click.option("--part", help="Run: the unit's part number.")
@click.option("--revision", help="Run: the unit's revision.")
@click.option("--batch", help="Run: the unit's batch.")
@click.option("--ui-values", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Run: answers to the procedure's prompts (JSON file).")
@click.option("--queue-id", type=int, help="QueueRetry/QueueDrop: the queue entry.")
@admin_options
def command_cmd(
    station: str,
    name: str,
    procedure: str | None,
    serial: str | None,
    part: str | None,
    revision: str | None,
    batch: str | None,
    ui_values: Path | None,
    queue_id: int | None,
    data_dir: Path | None,
    url: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Send command NAME to STATION: over its stream now, or with its next heartbeat.

    NAME is one of Run, Stop, Kill, Pull, UiResponse, QueueRetry, QueueDrop, Exit.
    """
    if name == "Run" and not procedure:
        raise click.UsageError("Run needs --procedure.")
    if name == "QueueDrop" and queue_id is None:
        raise click.UsageError("QueueDrop needs --queue-id.")
    client = connect(data_dir, url, key)
    body: dict[str, Any] = {"name": name}
    if name == "Run":
        body["procedure_id"] = client.procedure_id(procedure or "")
        for field, value in (("serial_number", serial), ("part_number", part), ("revision_number", revision), ("batch_number", batch)):
            if value:
                body[field] = value
        if ui_values:
            try:
                body["ui_values"] = json.loads(ui_values.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise click.UsageError(f"{ui_values} is not valid JSON: {exc}") from exc
    if queue_id is not None:
        body["queue_id"] = queue_id
    result = client.call("POST", f"/api/v2/stations/{client.station_id(station)}/commands", json=body)
    how = "sent on its stream" if result.get("delivered") else "queued for its next connection"
    emit(as_json, {"id": result["id"], "delivered": result.get("delivered", False)}, f"{name} {how} (command {result['id']}).")


def register(group: click.Group) -> None:
    """Add this module's commands to the root group."""
    group.add_command(server_group)
