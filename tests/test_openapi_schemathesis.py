"""Property-based requests generated from the app's own OpenAPI document
(schemathesis + hypothesis): whatever an editor's client sends, the answer is
never a 5xx. Cases are generated synchronously, then sent through the ASGI
client in this event loop (the database pool lives here)."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode

from newsletter.db import Database
from tests.conftest import bearer

Client = httpx.AsyncClient
EXAMPLES_PER_OPERATION = 20  # bounded: the whole test stays well under a minute
MINE = ("/api/v1/news-items", "/api/v1/issues")


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

    collect()
    return cases


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


async def test_no_server_errors_for_generated_requests(client: Client, db: Database) -> None:
    headers = await bearer(db, "admin")
    await _seed(client, headers)
    spec = (await client.get("/api/docs/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(spec)
    operations: list[Any] = []
    for result in schema.get_all_operations():
        operation: Any = result.ok()  # type: ignore[union-attr]  # Err raises: bad document
        if operation.path.startswith(MINE) and not operation.path.endswith("/stats"):
            operations.append(operation)
    assert len(operations) >= 15
    failures: list[str] = []
    sent = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for case in _cases(operation, mode):
                request = case.as_transport_kwargs(base_url="https://newsletter.gimpo.go.kr")
                request_headers = {
                    k: v for k, v in request["headers"].items() if k.lower() != "connection"
                }
                request_headers.update(headers)
                kwargs: dict[str, Any] = {}
                if "json" in request:
                    kwargs["json"] = request["json"]
                elif request.get("data") is not None:
                    data = request["data"]
                    kwargs["content"] = data if isinstance(data, bytes) else str(data).encode()
                response = await client.request(
                    request["method"],
                    request["url"],
                    params=request.get("params"),
                    headers=request_headers,
                    **kwargs,
                )
                sent += 1
                if response.status_code >= 500:
                    failures.append(
                        f"{request['method']} {request['url']} {request.get('params')} "
                        f"{kwargs} -> {response.status_code} {response.text[:200]}"
                    )
    assert sent > 100
    assert not failures, "\n".join(failures[:10])
