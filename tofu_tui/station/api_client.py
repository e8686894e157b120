"""Every call of spec/api.md the station makes, with typed errors.

Synchronous httpx: the CLI calls it directly and the daemon from worker threads
(`asyncio.to_thread`), so there is one client, not two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from pydantic import BaseModel, ConfigDict

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class ApiError(Exception):
    """Base of every API failure. `str()` is one sentence for a user."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class Unreachable(ApiError):
    """No answer: DNS, refused connection, timeout, TLS failure. Retry later."""


class Unauthorized(ApiError):
    """401: the key is unknown or was revoked. The daemon exits 75. (A 403 refuses one
    request, e.g. a run of a procedure no longer linked: that is `Rejected`.)"""


class Rejected(ApiError):
    """Another 4xx: the server refused this request; retrying it unchanged won't help."""


class Retryable(ApiError):
    """5xx or 429: the server is struggling; retry with backoff."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Redeemed(_Loose):
    api_key: str
    station_id: str
    station_name: str = ""
    organization_slug: str | None = None
    installation_id: str = ""


class WhoAmI(_Loose):
    auth_type: str
    station_id: str | None = None
    station_name: str | None = None
    organization_slug: str | None = None


class CommitRef(_Loose):
    sha: str
    message: str = ""
    branch: str | None = None


class RepositoryRef(_Loose):
    url: str | None = None
    owner: str | None = None
    name: str | None = None
    provider: str | None = None


class DeploymentRef(_Loose):
    id: str
    deployed_at: str | None = None
    commit: CommitRef
    repository: RepositoryRef = RepositoryRef()
    path: str | None = None


class ProcedureLink(_Loose):
    id: str
    identifier: str | None = None
    name: str
    runs_count: int = 0
    deployment: DeploymentRef | None = None


class CurrentStation(_Loose):
    id: str
    name: str
    organization_slug: str | None = None
    connection_status: str | None = None
    procedures: list[ProcedureLink] = []


class UploadTicket(_Loose):
    id: str
    upload_url: str


class HeartbeatReply(_Loose):
    server_time: str | None = None
    commands: list[dict[str, Any]] = []


def _server_message(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except (json.JSONDecodeError, ValueError):
        return (response.text.strip()[:200] or response.reason_phrase), None
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("detail") or response.reason_phrase)
        issues = body.get("issues")
        if isinstance(issues, list) and issues:
            message += ": " + "; ".join(str(i.get("message", i)) if isinstance(i, dict) else str(i) for i in issues)
        code = body.get("code")
        return message, str(code) if code is not None else None
    return response.reason_phrase, None


def raise_for(response: httpx.Response, what: str) -> None:
    """Turn a failed response into the matching typed error."""
    if response.is_success:
        return
    status = response.status_code
    message, code = _server_message(response)
    text = f"{what}: the server answered {status}: {message}"
    if status == 401:
        raise Unauthorized(text, status=status, code=code)
    if status == 429 or status >= 500:
        retry_after: float | None = None
        try:
            retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            pass
        raise Retryable(text, status=status, code=code, retry_after=retry_after)
    raise Rejected(text, status=status, code=code)


class ApiClient:
    """The station's HTTP client. `api_key` may be None before enrollment."""

    def __init__(self, server_url: str, api_key: str | None = None, *, ca_cert: str | None = None,
                 timeout: httpx.Timeout = DEFAULT_TIMEOUT, user_agent: str = "tofu-tui") -> None:
        self.server_url = server_url.rstrip("/")
        self.base_url = self.server_url + "/api"
        headers = {"User-Agent": user_agent}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._verify: Any = ca_cert if ca_cert else True
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, verify=self._verify)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, what: str, *, json_body: Any = None,
                 params: Mapping[str, Any] | None = None, content: bytes | None = None,
                 headers: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json_body, params=params, content=content,
                                          headers=headers)
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{what}: {self.server_url} did not answer in time ({type(exc).__name__}).") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"{what}: cannot reach {self.server_url} ({exc}).") from None
        raise_for(response, what)
        return response

    # --- identity ---------------------------------------------------------------------
    def health(self) -> bool:
        return self._request("GET", "/health", "health check").json().get("status") == "ok"

    def redeem(self, token: str, fingerprint: Mapping[str, str]) -> Redeemed:
        body = {"token": token, **fingerprint}
        return Redeemed.model_validate(self._request("POST", "/cli/login/redeem", "redeeming the setup token",
                                                     json_body=body).json())

    def whoami(self) -> WhoAmI:
        return WhoAmI.model_validate(self._request("GET", "/cli/whoami", "checking the station key").json())

    def current_station(self) -> CurrentStation:
        return CurrentStation.model_validate(
            self._request("GET", "/v2/stations/current", "reading the station's configuration").json())

    def uptime(self, station_id: str, days: int = 90) -> dict[str, Any]:
        return dict(self._request("GET", f"/v2/stations/{station_id}/uptime", "reading uptime",
                                  params={"days": days}).json())

    # --- runs -------------------------------------------------------------------------
    def create_run(self, body: Mapping[str, Any]) -> str:
        response = self._request("POST", "/v2/runs", "uploading a run", json_body=body)
        return str(response.json()["id"])

    def create_attachment(self, run_id: str, name: str, idempotency_key: str | None = None) -> UploadTicket:
        """The first attachment flow of api.md: create, then PUT the bytes, then finalize.
        With `idempotency_key`, a retried create returns the record the first one made
        (a server that does not know the header ignores it)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        ticket = UploadTicket.model_validate(self._request(
            "POST", f"/v2/runs/{run_id}/attachments", f"creating attachment {name!r}", json_body={"name": name},
            headers=headers).json())
        if not ticket.upload_url.startswith(("http://", "https://")):
            ticket.upload_url = urljoin(self.server_url + "/", ticket.upload_url.lstrip("/"))
        return ticket

    def put_attachment(self, upload_url: str, name: str, path: Path) -> None:
        data = path.read_bytes()
        try:
            if upload_url.startswith(self.server_url + "/"):
                put = self._http.put(upload_url, content=data, headers={"Content-Type": "application/octet-stream"})
            else:
                # Pre-signed storage elsewhere: it gets the bytes, never the station key.
                put = httpx.put(upload_url, content=data, timeout=self._http.timeout, verify=self._verify,
                                headers={"Content-Type": "application/octet-stream"})
        except httpx.TimeoutException:
            raise Unreachable(f"uploading attachment {name!r}: the upload URL did not answer in time.") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"uploading attachment {name!r}: cannot reach the upload URL ({exc}).") from None
        raise_for(put, f"uploading attachment {name!r}")

    def finalize_attachment(self, attachment_id: str, name: str) -> None:
        self._request("POST", f"/v2/attachments/{attachment_id}/finalize", f"finalizing attachment {name!r}")

    def upload_attachment(self, run_id: str, name: str, path: Path) -> str:
        ticket = self.create_attachment(run_id, name)
        self.put_attachment(ticket.upload_url, name, path)
        self.finalize_attachment(ticket.id, name)
        return ticket.id

    # --- presence ---------------------------------------------------------------------
    def heartbeat(self, body: Mapping[str, Any]) -> HeartbeatReply:
        return HeartbeatReply.model_validate(
            self._request("POST", "/cli/heartbeat", "sending a heartbeat", json_body=body).json())
