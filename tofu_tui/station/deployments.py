"""Deployments: what each linked procedure runs, pulled from Git and switched between runs.

For each linked procedure the server names one deployment (a commit). The station
fetches it into a bare mirror, checks it out into `deployments/<procedure>/<sha>/`
(never changed afterwards), builds its environment, and only then makes it the active
version. A version that fails to fetch or install never replaces a good one; the
reason is kept and reported. While a run of the procedure is in flight the new
version is staged and becomes active when the run ends.

Threads: a sync runs in a worker thread while the event loop reads the status and
starts runs. The SQLite connection and the run counters have one owner, `_db`, held
only for short reads and writes, never across a git fetch or an install, so the
status never waits behind a slow sync. Syncs (and collections) run one at a time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tofu_tui.models.events import DeploymentPulled, Event
from tofu_tui.models.status import DeploymentInfo, LinkedProcedure, UnitInfo
from tofu_tui.station import gitfetch, pyenv
from tofu_tui.station.api_client import CurrentStation, DeploymentRef, ProcedureLink
from tofu_tui.station.config import Credentials, GitSettings
from tofu_tui.station.paths import StationPaths
from tofu_tui.station.unit_info import unit_info


@dataclass(frozen=True)
class ActiveVersion:
    """What a run of a procedure starts with; it keeps it until it ends."""

    procedure_id: str
    procedure_name: str
    deployment_id: str
    sha: str
    checkout: Path
    directory: Path  # the folder holding procedure.yaml
    python: str


# A version that failed to fetch or install is tried again after this long (or on Pull).
FAILED_RETRY_S = 300.0


class ProcedureUnavailable(Exception):
    """The procedure cannot run here now; the message says why."""


def repository_url(ref: DeploymentRef) -> str | None:
    repo = ref.repository
    if repo.url:
        return repo.url
    if repo.owner and repo.name:
        host = {"github": "github.com", "gitlab": "gitlab.com", "bitbucket": "bitbucket.org"}.get(
            (repo.provider or "github").lower(), "github.com")
        return f"https://{host}/{repo.owner}/{repo.name}.git"
    return None


def _parse_dt(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class DeploymentManager:
    def __init__(self, paths: StationPaths, conn: sqlite3.Connection, *, git: GitSettings | None = None,
                 credentials: Credentials | None = None, keep_versions: int = 3,
                 emit: Callable[[Event], None] = lambda e: None, clock: Callable[[], float] = time.time) -> None:
        self.paths = paths
        self.conn = conn
        self.git = git or GitSettings()
        self.credentials = credentials
        self.keep_versions = keep_versions
        self.emit = emit
        self.clock = clock
        # Deployment ids used by runs in flight: never collected, never switched away under them.
        self.in_use: dict[str, int] = {}
        self.busy_procedures: dict[str, int] = {}
        self._db = threading.RLock()  # the connection and the counters above; held briefly
        self._syncing = threading.Lock()  # one sync or collection at a time (long: git, uv, rmtree)

    # --- sync -------------------------------------------------------------------------
    def sync(self, current: CurrentStation, *, force: bool = False) -> None:
        """Bring local state in line with `stations/current`. Blocking (git, uv).
        A version that failed is tried again on `force` (a Pull) or after a while."""
        with self._syncing:
            self._record_links(current)
            for link in current.procedures:
                if link.deployment is not None:
                    self._ensure(link, link.deployment, force)
            self._collect()

    def _record_links(self, current: CurrentStation) -> None:
        with self._db:
            now = self.clock()
            linked = {p.id for p in current.procedures}
            for link in current.procedures:
                self.conn.execute(
                    "INSERT INTO procedures(procedure_id, name, identifier, linked, wanted_deployment_id, updated_at) "
                    "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT(procedure_id) DO UPDATE SET name = excluded.name, "
                    "identifier = excluded.identifier, linked = 1, "
                    "wanted_deployment_id = excluded.wanted_deployment_id, updated_at = excluded.updated_at",
                    (link.id, link.name, link.identifier, link.deployment.id if link.deployment else None, now))
            for row in self.conn.execute("SELECT procedure_id FROM procedures WHERE linked = 1").fetchall():
                if row["procedure_id"] not in linked:
                    # Unlinked: no new runs; a run in flight keeps its version.
                    self.conn.execute("UPDATE procedures SET linked = 0, staged_deployment_id = NULL, "
                                      "updated_at = ? WHERE procedure_id = ?", (now, row["procedure_id"]))

    def _ensure(self, link: ProcedureLink, ref: DeploymentRef, force: bool) -> None:
        with self._db:
            row = self.conn.execute("SELECT * FROM deployments WHERE deployment_id = ?", (ref.id,)).fetchone()
        if row is None or row["status"] != "ready" or not Path(row["checkout"] or "/nonexistent").is_dir():
            recent_failure = (row is not None and row["status"] == "failed" and row["sha"] == ref.commit.sha
                              and self.clock() - row["updated_at"] < FAILED_RETRY_S)
            if recent_failure and not force:
                return
            self._prepare(link, ref, previous_error=row["error"] if row is not None else None)
        with self._db:
            self._switch(link, ref)

    def _switch(self, link: ProcedureLink, ref: DeploymentRef) -> None:
        """Make a ready version active, or staged while a run of the procedure is in
        flight. Under `_db`: no run can start between the check and the switch."""
        row = self.conn.execute("SELECT * FROM deployments WHERE deployment_id = ?", (ref.id,)).fetchone()
        if row is None or row["status"] != "ready":
            return
        proc = self.conn.execute("SELECT * FROM procedures WHERE procedure_id = ?", (link.id,)).fetchone()
        if proc["active_deployment_id"] == ref.id:
            if proc["staged_deployment_id"] is not None or proc["last_error"] is not None:
                self.conn.execute("UPDATE procedures SET staged_deployment_id = NULL, last_error = NULL "
                                  "WHERE procedure_id = ?", (link.id,))
            return
        if self.busy_procedures.get(link.id):
            if proc["staged_deployment_id"] != ref.id:
                self.conn.execute("UPDATE procedures SET staged_deployment_id = ?, last_error = NULL "
                                  "WHERE procedure_id = ?", (ref.id, link.id))
                self.emit(DeploymentPulled(procedure_id=link.id, deployment_id=ref.id, sha=ref.commit.sha,
                                           status="staged", message="active when the run in flight ends"))
            return
        self._activate(link.id, ref.id, ref.commit.sha)

    def _activate(self, procedure_id: str, deployment_id: str, sha: str) -> None:
        self.conn.execute("UPDATE procedures SET active_deployment_id = ?, staged_deployment_id = NULL, "
                          "last_error = NULL, updated_at = ? WHERE procedure_id = ?",
                          (deployment_id, self.clock(), procedure_id))
        self.conn.execute("UPDATE deployments SET last_used_at = ? WHERE deployment_id = ?",
                          (self.clock(), deployment_id))
        self.emit(DeploymentPulled(procedure_id=procedure_id, deployment_id=deployment_id, sha=sha, status="active"))

    def _prepare(self, link: ProcedureLink, ref: DeploymentRef, previous_error: str | None = None) -> None:
        sha = ref.commit.sha
        url = repository_url(ref)
        with self._db:
            self.conn.execute(
                "INSERT INTO deployments(deployment_id, procedure_id, sha, message, branch, deployed_at, repo_url, "
                "subpath, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'fetching', ?) "
                "ON CONFLICT(deployment_id) DO UPDATE SET sha = excluded.sha, status = 'fetching', error = NULL, "
                "updated_at = excluded.updated_at",
                (ref.id, link.id, sha, ref.commit.message, ref.commit.branch, ref.deployed_at, url, ref.path or "",
                 self.clock()))
            # Another deployment of the same commit may already be ready: share its folder
            # (a checkout depends on the commit only), and its environment if same subfolder.
            twin = self.conn.execute(
                "SELECT * FROM deployments WHERE procedure_id = ? AND sha = ? AND status = 'ready' AND "
                "deployment_id != ? AND checkout IS NOT NULL", (link.id, sha, ref.id)).fetchone()
        checkout = self.paths.deployments / _safe(link.id) / sha
        try:
            if url is None:
                raise gitfetch.GitError("the deployment names no repository URL")
            if twin is None or not Path(twin["checkout"]).is_dir():
                twin = None
                repo = gitfetch.fetch_commit(self.paths.repos, url, sha, self.git, self.credentials)
                if checkout.exists():  # left half-made by a crash: never trusted
                    gitfetch.remove_tree(checkout)
                gitfetch.checkout(repo, sha, checkout)
            directory = checkout / (ref.path or "")
            if not (directory / "procedure.yaml").is_file() and not (directory / "procedure.yml").is_file():
                raise gitfetch.GitError(f"no procedure.yaml in {ref.path or 'the repository root'} at "
                                        f"commit {sha[:12]}")
            if twin is not None and (twin["subpath"] or "") == (ref.path or ""):
                python = twin["python"]
            else:
                python = pyenv.prepare(directory, checkout)
        except (gitfetch.GitError, pyenv.EnvError, OSError) as exc:
            self._failed(link, ref, str(exc), previous_error)
            return
        except Exception as exc:  # any other failure still must not replace the good version
            self._failed(link, ref, f"{type(exc).__name__}: {exc}", previous_error)
            return
        with self._db:
            self.conn.execute("UPDATE deployments SET status = 'ready', checkout = ?, python = ?, error = NULL, "
                              "updated_at = ? WHERE deployment_id = ?", (str(checkout), python, self.clock(), ref.id))

    def _failed(self, link: ProcedureLink, ref: DeploymentRef, reason: str, previous_error: str | None) -> None:
        with self._db:
            self.conn.execute("UPDATE deployments SET status = 'failed', error = ?, updated_at = ? "
                              "WHERE deployment_id = ?", (reason, self.clock(), ref.id))
            self.conn.execute("UPDATE procedures SET last_error = ? WHERE procedure_id = ?", (reason, link.id))
        if reason != previous_error:  # reported once, not on every poll
            self.emit(DeploymentPulled(procedure_id=link.id, deployment_id=ref.id, sha=ref.commit.sha,
                                       status="failed", message=reason))

    # --- runs -------------------------------------------------------------------------
    def resolve(self, id_or_name: str) -> sqlite3.Row:
        with self._db:
            rows = self.conn.execute("SELECT * FROM procedures WHERE procedure_id = ? OR name = ? OR identifier = ? "
                                     "ORDER BY linked DESC", (id_or_name, id_or_name, id_or_name)).fetchall()
        if not rows:
            raise ProcedureUnavailable(f"No procedure {id_or_name!r} is linked to this station. `tofu-tui status` "
                                       "lists the linked ones; `tofu-tui pull` syncs them.")
        return rows[0]

    def active(self, id_or_name: str) -> ActiveVersion:
        with self._db:
            proc = self.resolve(id_or_name)
            if not proc["linked"]:
                raise ProcedureUnavailable(f"Procedure {proc['name']!r} is no longer linked to this station.")
            if proc["active_deployment_id"] is None:
                reason = f" ({proc['last_error']})" if proc["last_error"] else ""
                raise ProcedureUnavailable(f"Procedure {proc['name']!r} has no deployment ready on this "
                                           f"station yet{reason}.")
            row = self.conn.execute("SELECT * FROM deployments WHERE deployment_id = ?",
                                    (proc["active_deployment_id"],)).fetchone()
            checkout = Path(row["checkout"])
            return ActiveVersion(procedure_id=proc["procedure_id"], procedure_name=proc["name"],
                                 deployment_id=row["deployment_id"], sha=row["sha"], checkout=checkout,
                                 directory=checkout / (row["subpath"] or ""), python=row["python"])

    def take(self, id_or_name: str) -> ActiveVersion:
        """The active version, held for a run at once: a sync in another thread can
        neither switch nor remove it between the lookup and the hold."""
        with self._db:
            version = self.active(id_or_name)
            self.run_started(version)
            return version

    def run_started(self, version: ActiveVersion) -> None:
        with self._db:
            self.in_use[version.deployment_id] = self.in_use.get(version.deployment_id, 0) + 1
            self.busy_procedures[version.procedure_id] = self.busy_procedures.get(version.procedure_id, 0) + 1

    def run_ended(self, version: ActiveVersion) -> None:
        """Release the version; a staged one becomes active now that no run uses the old."""
        with self._db:
            for table, key in ((self.in_use, version.deployment_id), (self.busy_procedures, version.procedure_id)):
                table[key] -= 1
                if table[key] <= 0:
                    del table[key]
            if version.procedure_id in self.busy_procedures:
                return
            proc = self.conn.execute("SELECT * FROM procedures WHERE procedure_id = ?",
                                     (version.procedure_id,)).fetchone()
            if proc is not None and proc["staged_deployment_id"] and proc["linked"]:
                row = self.conn.execute("SELECT sha FROM deployments WHERE deployment_id = ?",
                                        (proc["staged_deployment_id"],)).fetchone()
                self._activate(version.procedure_id, proc["staged_deployment_id"], row["sha"])

    # --- housekeeping -----------------------------------------------------------------
    def collect_garbage(self) -> list[Path]:
        """Keep, per linked procedure, the active and staged versions and the most recent
        others (instant rollback); remove the rest unless a run uses them. A procedure
        no longer linked keeps nothing once no run of it is in flight: its versions, and
        the mirrors only it used, go (a queued upload needs none of them: its
        attachments are copies in the queue)."""
        with self._syncing:
            return self._collect()

    def _collect(self) -> list[Path]:
        # Decided and recorded under `_db` (a run starting now cannot take what goes),
        # removed from disk after: a collected version is never handed out again.
        doomed: list[Path] = []
        with self._db:
            procs = self.conn.execute("SELECT * FROM procedures").fetchall()
            for proc in procs:
                if proc["linked"]:
                    doomed += self._spare_versions(proc)
                elif proc["procedure_id"] not in self.busy_procedures:
                    doomed += self._retire(proc, procs)
        for path in doomed:
            gitfetch.remove_tree(path)
        return doomed

    def _spare_versions(self, proc: sqlite3.Row) -> list[Path]:
        doomed: list[Path] = []
        keep = {proc["active_deployment_id"], proc["staged_deployment_id"], proc["wanted_deployment_id"]}
        ready = self.conn.execute(
            "SELECT * FROM deployments WHERE procedure_id = ? AND status = 'ready' "
            "ORDER BY COALESCE(last_used_at, updated_at) DESC", (proc["procedure_id"],)).fetchall()
        spare = self.keep_versions
        for row in ready:
            if row["deployment_id"] in keep or row["deployment_id"] in self.in_use:
                continue
            if spare > 0:
                spare -= 1
                continue
            doomed += self._drop(row)
        return doomed

    def _drop(self, row: sqlite3.Row) -> list[Path]:
        shared = self.conn.execute(
            "SELECT COUNT(*) FROM deployments WHERE checkout = ? AND deployment_id != ? AND "
            "status = 'ready'", (row["checkout"], row["deployment_id"])).fetchone()[0]
        self.conn.execute("UPDATE deployments SET status = 'collected', checkout = NULL "
                          "WHERE deployment_id = ?", (row["deployment_id"],))
        return [] if shared else [Path(row["checkout"])]

    def _retire(self, proc: sqlite3.Row, procs: list[sqlite3.Row]) -> list[Path]:
        """Everything of an unlinked procedure with no run in flight. Linked again
        later, it is fetched afresh."""
        procedure_id = proc["procedure_id"]
        doomed: list[Path] = []
        for row in self.conn.execute("SELECT * FROM deployments WHERE procedure_id = ? AND status = 'ready'",
                                     (procedure_id,)).fetchall():
            if row["deployment_id"] not in self.in_use:
                doomed += self._drop(row)
        self.conn.execute("UPDATE procedures SET active_deployment_id = NULL, staged_deployment_id = NULL, "
                          "wanted_deployment_id = NULL WHERE procedure_id = ?", (procedure_id,))
        # Its folder, with what failed installs left there, unless another procedure
        # still in use maps to the same folder name.
        keep = [p["procedure_id"] for p in procs
                if p["procedure_id"] != procedure_id and (p["linked"] or p["procedure_id"] in self.busy_procedures)]
        folder = _safe(procedure_id)
        if folder not in {_safe(other) for other in keep}:
            doomed.append(self.paths.deployments / folder)
        # The mirrors only it used (a mirror is per repository URL, shared between procedures).
        wanted = {row["repo_url"] for row in self.conn.execute(
            f"SELECT DISTINCT repo_url FROM deployments WHERE procedure_id IN ({','.join('?' * len(keep))})",
            keep).fetchall()} if keep else set()
        for row in self.conn.execute("SELECT DISTINCT repo_url FROM deployments WHERE procedure_id = ? AND "
                                     "repo_url IS NOT NULL", (procedure_id,)).fetchall():
            mirror = gitfetch.mirror_path(self.paths.repos, row["repo_url"])
            if row["repo_url"] not in wanted and mirror.exists():
                doomed.append(mirror)
        return [path for path in doomed if path.exists()]

    def linked_procedures(self) -> list[LinkedProcedure]:
        with self._db:  # one consistent snapshot, never half a sync
            procs = self.conn.execute("SELECT * FROM procedures WHERE linked = 1 ORDER BY name").fetchall()
            return [self._linked(proc) for proc in procs]

    def _linked(self, proc: sqlite3.Row) -> LinkedProcedure:
        active = self._info(proc["active_deployment_id"], "active")
        staged = self._info(proc["staged_deployment_id"], "staged")
        wanted = proc["wanted_deployment_id"]
        if staged is None and wanted and wanted not in (proc["active_deployment_id"],):
            staged = self._info(wanted, None)
        return LinkedProcedure(id=proc["procedure_id"], name=proc["name"], identifier=proc["identifier"],
                               active=active, staged=staged, unit=self._unit(proc["active_deployment_id"]))

    def _unit(self, deployment_id: str | None) -> UnitInfo | None:
        """The active version's `unit` section, for the console's identify form."""
        if deployment_id is None:
            return None
        row = self.conn.execute("SELECT checkout, subpath FROM deployments WHERE deployment_id = ?",
                                (deployment_id,)).fetchone()
        if row is None or not row["checkout"]:
            return None
        return unit_info(str(Path(row["checkout"]) / (row["subpath"] or "")))

    def _info(self, deployment_id: str | None, status: str | None) -> DeploymentInfo | None:
        if deployment_id is None:
            return None
        row = self.conn.execute("SELECT * FROM deployments WHERE deployment_id = ?", (deployment_id,)).fetchone()
        if row is None:
            return None
        state = status or {"fetching": "fetching", "failed": "failed"}.get(row["status"], "staged")
        return DeploymentInfo(id=row["deployment_id"], sha=row["sha"], message=row["message"], branch=row["branch"],
                              deployed_at=_parse_dt(row["deployed_at"]), status=state,  # type: ignore[arg-type]
                              error=row["error"])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "procedure"
