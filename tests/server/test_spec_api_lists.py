"""api.md, Conventions: every list answers `{data, meta: {has_more, next_cursor}}`, pages
with `?limit=&cursor=`, and array query parameters repeat; every error has one shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.server.conftest import Server, make_repo, run_body


def _walk(client: httpx.Client, path: str, **params: Any) -> list[str]:
    """Every id of a list, two at a time, checking the envelope of each page."""
    ids: list[str] = []
    cursor: int | None = 0
    pages = 0
    while cursor is not None:
        response = client.get(path, params={**params, "limit": 2, "cursor": cursor})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"data", "meta"} and set(body["meta"]) == {"has_more", "next_cursor"}
        assert isinstance(body["meta"]["has_more"], bool)
        assert body["meta"]["has_more"] == (body["meta"]["next_cursor"] is not None)
        assert isinstance(body["meta"]["next_cursor"], int | None)
        assert len(body["data"]) <= 2
        ids += [str(item["id"]) for item in body["data"]]
        cursor = body["meta"]["next_cursor"]
        pages += 1
        assert pages < 20
    assert len(ids) == len(set(ids)), "a page repeated an item"
    return ids


def test_every_list_pages_with_the_same_envelope(server: Server, tmp_path: Path) -> None:
    make_repo(tmp_path / "repo")
    procedures = [server.procedure(f"P{i}", {"url": str(tmp_path / "repo")}) for i in range(5)]
    stations = [server.station(f"S{i}") for i in range(5)]
    for station_id in stations:
        server.link(station_id, procedures[0])
    deployments = [server.admin.post("/api/v2/deployments", json={"procedure_id": p}).json()["id"] for p in procedures]
    runs = [server.admin.post("/api/v2/runs", json=run_body(procedures[0], serial=f"SN-{i}")).json()["id"] for i in range(5)]
    assert sorted(_walk(server.admin, "/api/v2/stations")) == sorted(stations)
    assert sorted(_walk(server.admin, "/api/v2/procedures")) == sorted(procedures)
    assert sorted(_walk(server.admin, "/api/v2/deployments")) == sorted(deployments)
    assert sorted(_walk(server.admin, "/api/v2/runs")) == sorted(runs)
    assert _walk(server.admin, f"/api/v2/stations/{stations[0]}/events") == []
    # The last page says so.
    last = server.admin.get("/api/v2/runs", params={"limit": 5}).json()
    assert last["meta"] == {"has_more": False, "next_cursor": None}


def test_array_query_parameters_repeat(server: Server, tmp_path: Path) -> None:
    make_repo(tmp_path / "repo")
    p1, p2, p3 = (server.procedure(n, {"url": str(tmp_path / "repo")}) for n in ("A", "B", "C"))
    s1, s2, s3 = server.station("s1"), server.station("s2"), server.station("s3")
    server.link(s1, p1)
    server.link(s2, p2)
    server.link(s3, p3)
    d1, d2, _d3 = (server.admin.post("/api/v2/deployments", json={"procedure_id": p}).json()["id"] for p in (p1, p2, p3))
    for procedure, serial, outcome in ((p1, "SN-1", "PASS"), (p2, "SN-2", "FAIL"), (p3, "SN-3", "ERROR")):
        server.admin.post("/api/v2/runs", json=run_body(procedure, serial=serial, outcome=outcome))

    def ids(path: str, query: str) -> set[str]:
        response = server.admin.get(f"{path}?{query}")
        assert response.status_code == 200, response.text
        return {str(item["id"]) for item in response.json()["data"]}

    assert ids("/api/v2/stations", f"procedure_ids={p1}&procedure_ids={p2}") == {s1, s2}
    assert ids("/api/v2/deployments", f"procedure_ids={p1}&procedure_ids={p2}") == {d1, d2}
    serials = {
        r["unit"]["serial_number"] for r in server.admin.get("/api/v2/runs?outcomes=PASS&outcomes=FAIL").json()["data"]
    }
    assert serials == {"SN-1", "SN-2"}
    serials = {
        r["unit"]["serial_number"]
        for r in server.admin.get(f"/api/v2/runs?procedure_ids={p2}&procedure_ids={p3}&serial_numbers=SN-3&serial_numbers=SN-2").json()["data"]
    }
    assert serials == {"SN-2", "SN-3"}
    # An unknown outcome is refused, not ignored.
    refused = server.admin.get("/api/v2/runs?outcomes=PASS&outcomes=MAYBE")
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error"


def test_limit_out_of_range_and_bad_cursor_are_422(server: Server) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"cursor": -1}, {"cursor": "x"}):
        for path in ("/api/v2/runs", "/api/v2/stations", "/api/v2/procedures", "/api/v2/deployments"):
            response = server.admin.get(path, params=params)
            assert response.status_code == 422, (path, params, response.text)
            body = response.json()
            assert body["code"] == "validation_error" and body["message"]
            assert body["issues"] and all(set(i) == {"message"} for i in body["issues"])


def test_every_error_has_the_same_shape(server: Server) -> None:
    anonymous = server.client()
    cases = [
        (anonymous.get("/api/v2/stations"), 401),
        (server.admin.get("/api/v2/stations/nope"), 404),
        (server.admin.get("/api/v2/procedures/nope"), 404),
        (server.admin.get("/api/v2/deployments/nope"), 404),
        (server.admin.get("/api/v2/runs/nope"), 404),
        (server.admin.get("/api/v2/no-such-endpoint"), 404),
        (server.admin.put("/api/v2/stations"), 405),
        (server.admin.post("/api/v2/stations", content=b"{", headers={"content-type": "application/json"}), 400),
        (server.admin.post("/api/v2/stations", json={}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        body = response.json()
        assert set(body) <= {"message", "code", "issues"}, body
        assert isinstance(body["message"], str) and body["message"] and isinstance(body["code"], str) and body["code"]
        if "issues" in body:
            assert all(isinstance(i["message"], str) and set(i) == {"message"} for i in body["issues"])
    assert cases[0][0].headers.get("www-authenticate", "").lower().startswith("bearer")
