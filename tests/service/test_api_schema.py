"""Property-based API tests: schemathesis generates requests from the app's own OpenAPI schema.

Valid and invalid requests (positive and negative generation) for every
operation, against a live server on loopback with the fake encoder, with all
of schemathesis's checks: no 5xx, status codes and bodies as the schema
states, invalid data refused, valid data accepted. Bounded to a few hundred
requests so it runs in well under a minute.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation import GenerationMode

from faq_search.service.config import TOKEN_ENV
from tests.conftest import FakeEncoder
from tests.service.test_hostile_clients import live_server

MAX_EXAMPLES = int(os.environ.get("FAQ_SEARCH_SCHEMA_EXAMPLES", "100"))  # per operation and mode: ~1,000 requests, 30 s
DERANDOMIZE = "FAQ_SEARCH_SCHEMA_EXAMPLES" not in os.environ  # the same cases in CI; set it to explore


TOKEN = "schema-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def all_checks() -> list[Any]:
    load_all_checks()
    return list(CHECKS.get_all())


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The live server's schema, with the token set (so the checks of authentication run too)."""
    with (
        mock.patch.dict(os.environ, {TOKEN_ENV: TOKEN}),
        live_server(tmp_path_factory.mktemp("api"), FakeEncoder()) as (port, _),
    ):
        schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
        schema.config.generation.update(
            modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES, deterministic=True
        )
        rejection = schema.config.checks.negative_data_rejection  # a body over its path's limit is refused: 413
        rejection.expected_statuses = [*rejection.expected_statuses, "413"]
        yield schema


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_its_schema(api_schema: Any, mode: GenerationMode) -> None:
    """Every operation, in one mode; hypothesis stops at the first failing case and shrinks it."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 12
    if mode is GenerationMode.NEGATIVE:  # only request bodies can be invalid; the GET endpoints take nothing
        operations = [op for op in operations if op.method.upper() == "POST"]
    checks = all_checks()
    assert len(checks) >= 10
    for operation in operations:
        # /indexes/{name}/... run the same code as the single-index paths: fewer cases there keep the test short
        examples = MAX_EXAMPLES // 4 if operation.path.startswith("/indexes/") else MAX_EXAMPLES

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=DERANDOMIZE,
        )
        def check(case: Any) -> None:
            filtered = isinstance(case.body, dict) and case.body.get("filter") is not None
            # A filter's meaning depends on the index's fields, which no schema states: a schema-valid filter
            # naming an unknown field is a 422 by design, so that one check is left out for such bodies.
            used = [c for c in checks if c.__name__ != "positive_data_acceptance"] if filtered else checks
            case.call_and_validate(headers=AUTH, checks=used)

        check()


def test_the_schema_lists_every_endpoint(api_schema: Any) -> None:
    paths = set(api_schema.raw_schema["paths"])
    single = {"/ask", "/ask/batch", "/embed", "/health", "/index", "/reload"}
    named = {"/indexes", "/indexes/{name}", "/indexes/{name}/ask", "/indexes/{name}/ask/batch"}
    assert paths == single | named | {"/indexes/{name}/embed", "/indexes/{name}/reload"}
    ask = api_schema.raw_schema["paths"]["/indexes/{name}/ask"]["post"]
    body = ask["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" in body or "filter" in body.get("properties", {})
