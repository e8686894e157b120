"""Property-based fuzzing of the served OpenAPI document: no input makes a 5xx, and
every response matches the schema the document declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.fixtures import start_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with start_server(Path(tmp_path_factory.mktemp("fuzz"))) as (url, key, _data, _handle):
        yield url, key


@pytest.fixture(scope="module")
def api_schema(live: tuple[str, str]) -> schemathesis.BaseSchema:
    url, _key = live
    # The coverage phase enumerates every boundary of every field: too slow for the suite.
    config = schemathesis.config.SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}})
    return schemathesis.openapi.from_url(url + "/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: schemathesis.Case, live: tuple[str, str]) -> None:
    url, key = live
    case.call_and_validate(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
