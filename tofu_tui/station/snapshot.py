"""Station status without a daemon (read from state.db), its text rendering, and a
one-off deployment sync for `tofu-tui pull` when no daemon runs."""

from __future__ import annotations

from tofu_tui.models.status import StationStatus
from tofu_tui.station import state_db
from tofu_tui.station.config import ConfigError, load_config, load_credentials
from tofu_tui.station.deployments import DeploymentManager
from tofu_tui.station.enroll import client_for
from tofu_tui.station.ledger import Ledger
from tofu_tui.station.paths import StationPaths
from tofu_tui.station.queue import UploadQueue


def offline_status(paths: StationPaths) -> StationStatus:
    status = StationStatus()
    installation = ""
    try:
        config = load_config(paths)
        status.station_id, status.station_name, status.server_url = (config.station_id, config.station_name,
                                                                     config.server_url)
        status.enrolled = paths.credentials_toml.exists()
        installation = config.installation_id
    except ConfigError:
        pass
    if not paths.state_db.exists():
        return status
    conn = state_db.connect(paths.state_db)
    try:
        queue = UploadQueue(paths, installation, conn=conn)
        status.procedures = DeploymentManager(paths, conn).linked_procedures()
        for procedure in status.procedures:
            procedure.runs_today = queue.runs_today(procedure.id)
        status.queue = queue.counts()
        status.queue_entries = queue.entries(limit=100)
        status.uptime = Ledger(conn).uptime()
    finally:
        conn.close()
    return status


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def render_status(status: StationStatus, daemon_running: bool) -> str:
    lines = [
        f"Station:   {status.station_name or '(not enrolled)'}" + (f" ({status.station_id})" if status.station_id else ""),
        f"Server:    {status.server_url or '-'}",
        f"Daemon:    {'running' if daemon_running else 'not running'}"
        + (f", {'connected' if status.connected else 'offline'}" if daemon_running else ""),
    ]
    if status.run_in_flight:
        lines.append(f"Run:       {status.run_in_flight} in progress")
    lines.append("Procedures:")
    if not status.procedures:
        lines.append("  (none linked; `tofu-tui pull` syncs)")
    for procedure in status.procedures:
        active = procedure.active
        text = f"{active.sha[:8]} {active.branch or ''} {active.message.splitlines()[0] if active.message else ''}" \
            if active else "no deployment ready"
        lines.append(f"  {procedure.name}: {text.strip()}  ({procedure.runs_today} runs today)")
        if procedure.staged:
            staged = procedure.staged
            lines.append(f"    next: {staged.sha[:8]} {staged.status}" + (f": {staged.error}" if staged.error else ""))
    q = status.queue
    lines.append(f"Queue:     {q.pending} pending, {q.backoff} backing off, {q.parked} parked")
    lines.append(f"Uptime:    {_pct(status.uptime.last_24h)} 24 h, {_pct(status.uptime.last_7d)} 7 d, "
                 f"{_pct(status.uptime.last_90d)} 90 d")
    return "\n".join(lines)


def pull_once(paths: StationPaths) -> list[str]:
    """Sync deployments in this process (no daemon running)."""
    config, client = client_for(paths)
    with client:
        current = client.current_station()
    manager = DeploymentManager(paths.ensure(), state_db.connect(paths.state_db), git=config.git,
                                credentials=load_credentials(paths), keep_versions=config.keep_versions)
    manager.sync(current, force=True)
    lines = []
    for procedure in manager.linked_procedures():
        active = f"{procedure.active.sha[:12]} active" if procedure.active else "no version ready"
        lines.append(f"{procedure.name}: {active}")
        if procedure.staged and procedure.staged.error:
            lines.append(f"  {procedure.staged.sha[:12]} failed: {procedure.staged.error}")
    return lines or ["No procedure is linked to this station."]
