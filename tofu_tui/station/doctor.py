"""`tofu-tui doctor`: each check says what is wrong and what to do."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from tofu_tui.station import gitfetch, state_db
from tofu_tui.station.api_client import ApiError, Unauthorized
from tofu_tui.station.config import ConfigError, load_credentials
from tofu_tui.station.deployments import DeploymentManager
from tofu_tui.station.enroll import client_for
from tofu_tui.station.paths import StationPaths

MIN_FREE_BYTES = 1 << 30
MAX_SKEW_S = 60.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def run_checks(paths: StationPaths) -> list[Check]:
    checks: list[Check] = []
    try:
        config, client = client_for(paths)
    except ConfigError as exc:
        return [Check("credentials", False, str(exc)), *_local_checks(paths)]
    checks.append(Check("credentials", True, f"station {config.station_name or config.station_id}"))
    with client:
        try:
            client.whoami()
            checks.append(Check("server", True, f"{config.server_url} answers and accepts the station key"))
        except Unauthorized:
            checks.append(Check("server", False, "the station key was revoked: generate a new setup token from the "
                                                 "dashboard and run `tofu-tui login`"))
        except ApiError as exc:
            checks.append(Check("server", False, f"{exc.message} Check the network, proxy and server URL."))
        checks.append(_clock(config.server_url, config.ca_cert))
        try:
            current = client.current_station()
        except ApiError:
            current = None
    if current is not None:
        credentials = load_credentials(paths)
        for procedure in current.procedures:
            ref = procedure.deployment
            if ref is None:
                continue
            from tofu_tui.station.deployments import repository_url

            url = repository_url(ref)
            try:
                if url is None:
                    raise gitfetch.GitError("the deployment names no repository")
                gitfetch.fetch_commit(paths.repos, url, ref.commit.sha, config.git, credentials)
                checks.append(Check(f"git {procedure.name}", True, f"commit {ref.commit.sha[:12]} reachable"))
            except gitfetch.GitError as exc:
                checks.append(Check(f"git {procedure.name}", False, f"{exc}. Check git settings in station.toml."))
    return checks + _local_checks(paths)


def _clock(server_url: str, ca_cert: str | None) -> Check:
    try:
        started = time.time()
        response = httpx.get(server_url.rstrip("/") + "/api/health", timeout=5, verify=ca_cert or True)
        date = response.headers.get("date")
        if not date:
            return Check("clock", True, "the server sends no Date header; skew not checked")
        skew = parsedate_to_datetime(date).timestamp() - (started + time.time()) / 2
    except (httpx.HTTPError, ValueError, TypeError) as exc:
        return Check("clock", False, f"could not compare clocks ({exc})")
    if abs(skew) > MAX_SKEW_S:
        return Check("clock", False, f"this machine's clock is {skew:+.0f} s off the server's: enable NTP")
    return Check("clock", True, f"{skew:+.1f} s from the server")


def _local_checks(paths: StationPaths) -> list[Check]:
    checks: list[Check] = []
    paths.ensure()
    free = shutil.disk_usage(paths.data_dir).free
    checks.append(Check("disk", free >= MIN_FREE_BYTES,
                        f"{free / 1e9:.1f} GB free in {paths.data_dir}"
                        + ("" if free >= MIN_FREE_BYTES else ": free some space, runs and deployments need it")))
    try:
        conn = state_db.connect(paths.state_db)
        linked = len(DeploymentManager(paths, conn).linked_procedures())
        conn.close()
        checks.append(Check("state database", True, f"{paths.state_db} is intact ({linked} linked procedures)"))
    except state_db.StateDbError as exc:
        checks.append(Check("state database", False, str(exc)))
    return checks
