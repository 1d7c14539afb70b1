"""Property-based requests generated from the app's own OpenAPI document
(schemathesis + hypothesis) against EVERY documented operation -- the /api/v1
routes with an admin key so the guards let them through, and the residents'
pages (/subscribe, /confirm, /unsubscribe, /reconfirm, /archive) and /ops as
anyone could send them: whatever a client sends, the answer is never a 5xx.
Cases are generated synchronously (derandomised, so a failure reproduces),
then sent through the ASGI client in this event loop (the database pool lives
here)."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit

import httpx
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from newsletter.core.db import Database
from tests.conftest import bearer

Client = httpx.AsyncClient
# Bounded: ~45 operations x 2 modes; the whole test stays around a minute.
EXAMPLES_PER_OPERATION = 20
API = "/api/v1/"
# Pages and probes a resident (or an attacker) reaches without any key.
PUBLIC = ("/subscribe", "/confirm", "/unsubscribe", "/reconfirm", "/archive", "/ops")

# Three routes read their body raw (CSV, a feed, a bounce message), so the
# document has no body schema for them; describe one here so the fuzzer sends
# bodies, not just empty requests.
TEXT_BODY = {"schema": {"type": "string", "maxLength": 2000}}


def _form(*fields: str) -> dict[str, Any]:
    """A form body (urlencoded and JSON) with these text fields, as the pages post."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "maxLength": 300} for name in fields},
    }
    return {
        "application/x-www-form-urlencoded": {"schema": schema},
        "application/json": {"schema": schema},
    }


RAW_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/subscribe"): _form("email", "name", "consent", "website"),
    ("POST", "/confirm"): _form("token", "name"),
    ("POST", "/unsubscribe"): _form("token", "List-Unsubscribe"),
    ("POST", "/reconfirm"): _form("token"),
    ("POST", "/api/v1/subscribers/import"): {"text/csv": TEXT_BODY, "text/plain": TEXT_BODY},
    ("POST", "/api/v1/bounces"): {"text/plain": TEXT_BODY},
    ("POST", "/api/v1/news-items/import-feed"): {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"url": {"type": "string", "maxLength": 2000}},
                "required": ["url"],
            }
        },
        "application/xml": TEXT_BODY,
    },
}


def _with_raw_bodies(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    for (method, path), content in RAW_BODIES.items():
        operation = spec["paths"][path][method.lower()]
        assert "requestBody" not in operation, "documented now: drop it from RAW_BODIES"
        operation["requestBody"] = {"required": False, "content": content}
    return spec


def _fuzzed(path: str) -> bool:
    return path.startswith(API) or path.startswith(PUBLIC)


def _cases(operation: Any, mode: GenerationMode) -> list[Any]:
    cases: list[Any] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        database=None,
        deadline=None,
        derandomize=True,  # the same requests every run: a failure reproduces
        suppress_health_check=list(HealthCheck),
    )
    def collect(case: Any) -> None:
        cases.append(case)

    try:
        collect()
    except Unsatisfiable:  # nothing to get wrong (no parameters, no body): no negative cases
        assert mode == GenerationMode.NEGATIVE
    return cases


def _fetches_the_network(request: dict[str, Any]) -> bool:
    """A generated feed URL with a real-looking host would be resolved and
    fetched: tests stay off the network (refusals are tested in test_news_api)."""
    payload = request.get("json")
    if not isinstance(payload, dict) or not isinstance(payload.get("url"), str):
        return False
    try:
        parts = urlsplit(payload["url"].strip())
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


async def _seed(client: Client, headers: dict[str, str]) -> None:
    item = await client.post(
        "/api/v1/news-items",
        json={"title": "김포 소식", "link": "https://www.gimpo.go.kr/news/1"},
        headers=headers,
    )
    for _ in range(2):
        await client.post(
            "/api/v1/issues",
            json={"title": "호", "news_item_ids": [item.json()["id"]]},
            headers=headers,
        )
    await client.post(
        "/api/v1/subscribers/import",
        params={"mode": "confirmed", "source": "2024 시민 설문"},
        content="email,name\nresident1@example.com,김포\nresident2@example.com,\n".encode(),
        headers={**headers, "content-type": "text/csv"},
    )


async def test_no_server_errors_for_generated_requests(client: Client, db: Database) -> None:
    headers = await bearer(db, "admin")
    await _seed(client, headers)
    spec = (await client.get("/api/docs/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(_with_raw_bodies(spec))
    operations: list[Any] = []
    for result in schema.get_all_operations():
        operation: Any = result.ok()  # type: ignore[union-attr]  # Err raises: bad document
        if _fuzzed(operation.path):
            operations.append(operation)
    covered = {(op.method.upper(), op.path) for op in operations}
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if _fuzzed(path)
        for method in item
    }
    assert covered == documented and len(covered) >= 26, sorted(documented - covered)
    pages = {path for _, path in covered if not path.startswith(API)}
    assert {
        "/subscribe",
        "/confirm",
        "/unsubscribe",
        "/archive",
        "/archive/{number}",
        "/ops",
    } <= pages, pages
    failures: list[str] = []
    sent: dict[tuple[str, str], int] = dict.fromkeys(covered, 0)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for case in _cases(operation, mode):
                request = case.as_transport_kwargs(base_url="https://newsletter.gimpo.go.kr")
                if _fetches_the_network(request):
                    continue
                request_headers = {
                    k: v for k, v in request["headers"].items() if k.lower() != "connection"
                }
                if operation.path.startswith(API):
                    request_headers.update(headers)
                kwargs: dict[str, Any] = {}
                if "json" in request:
                    kwargs["json"] = request["json"]
                elif isinstance(request.get("data"), dict):
                    kwargs["data"] = request["data"]
                elif request.get("data") is not None:
                    data = request["data"]
                    kwargs["content"] = data if isinstance(data, bytes) else str(data).encode()
                elif request.get("content") is not None:
                    kwargs["content"] = request["content"]
                response = await client.request(
                    request["method"],
                    request["url"],
                    params=request.get("params"),
                    headers=request_headers,
                    **kwargs,
                )
                sent[(operation.method.upper(), operation.path)] += 1
                if response.status_code >= 500:
                    failures.append(
                        f"{request['method']} {request['url']} {request.get('params')} "
                        f"{str(kwargs)[:300]} -> {response.status_code} {response.text[:200]}"
                    )
    assert not failures, "\n".join(failures[:10])
    assert all(count >= (5 if path.startswith(API) else 1) for (_, path), count in sent.items()), (
        sent
    )
