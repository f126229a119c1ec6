"""POST /v1/news/webhook: HMAC-signed pushed news (serve_apps.news_webhook) on the real app."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import httpx
import pytest

from serve_apps.api import build_app
from serve_apps.news_webhook import (
    PATH,
    SECRET_ENV,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from tripwire.model import NewsItem, SymbolTable

SECRET = b"webhook-test-secret"


class Inbox:
    """The backend's news intake, recording what reached it."""

    def __init__(self) -> None:
        self.items: list[NewsItem] = []

    async def news(self, items: list[NewsItem]) -> dict[str, int]:
        self.items.extend(items)
        return {"accepted": len(items), "rejected": 0}


def _body(**item) -> bytes:
    return json.dumps({"items": [{"headline": "SEC approves spot SOL ETF", "source": "reuters",
                                  "symbols": ["SOLUSDT"], **item}]}).encode()


def _post(body: bytes, headers: dict[str, str], env_secret: bytes | None = SECRET,
          **app_kw):
    inbox = Inbox()

    async def go():
        mp = pytest.MonkeyPatch()
        if env_secret is None:
            mp.delenv(SECRET_ENV, raising=False)
        else:
            mp.setenv(SECRET_ENV, env_secret.decode())
        try:
            app = build_app(inbox, SimpleNamespace(), SymbolTable(["SOLUSDT"]), token="t0k3n",
                            **app_kw)
        finally:
            mp.undo()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            out = []
            for _ in range(2 if headers.get("_twice") else 1):
                h = {k: v for k, v in headers.items() if not k.startswith("_")}
                out.append(await client.post(PATH, content=body, headers=h))
            return out

    return asyncio.run(go()), inbox


def _signed(body: bytes, *, ts: int | None = None, secret: bytes = SECRET) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, ts, body),
            "content-type": "application/json"}


def test_a_signed_push_is_taken_with_webhook_provenance_and_arrival_time():
    published = time.time_ns() - 3_600 * 10**9
    body = _body(published_ns=published)
    before = time.time_ns()
    (resp,), inbox = _post(body, _signed(body))
    assert resp.status_code == 200 and resp.json() == {"accepted": 1, "rejected": 0}
    (item,) = inbox.items
    assert item.source == "webhook:reuters"  # a pusher cannot borrow an RSS source's trust
    assert item.published_ns == published and item.ts_ns >= before  # no look-ahead
    assert item.symbols == ("SOLUSDT",)


@pytest.mark.parametrize("case", ["missing", "wrong-secret", "tampered", "stale", "no-secret"])
def test_unsigned_wrong_stale_or_unconfigured_is_401_and_nothing_is_taken(case):
    body = _body()
    headers = _signed(body)
    env = SECRET
    if case == "missing":
        headers = {"content-type": "application/json"}
    elif case == "wrong-secret":
        headers = _signed(body, secret=b"not-the-secret")
    elif case == "tampered":
        body = _body(headline="SEC rejects spot SOL ETF")
    elif case == "stale":
        headers = _signed(body, ts=int(time.time()) - 3600)
    elif case == "no-secret":
        env = None
    (resp,), inbox = _post(body, headers, env)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == "unauthorized"
    assert inbox.items == []
    assert SECRET.decode() not in resp.text


def test_a_replayed_request_is_refused():
    body = _body()
    (first, again), inbox = _post(body, {**_signed(body), "_twice": "1"})
    assert first.status_code == 200
    assert again.status_code == 409 and again.json()["error"]["code"] == "replayed"
    assert len(inbox.items) == 1


def test_a_signed_but_invalid_body_names_the_field():
    body = _body(headline="bad\u0000headline")
    (resp,), inbox = _post(body, _signed(body))
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "items.0.headline"
    body = b"{not json"
    (resp,), _ = _post(body, _signed(body))
    assert resp.status_code == 400 and inbox.items == []


def test_the_bearer_token_is_not_what_opens_it():
    body = _body()
    (resp,), inbox = _post(body, {"Authorization": "Bearer t0k3n",
                                  "content-type": "application/json"})
    assert resp.status_code == 401 and inbox.items == []


def test_pushed_headlines_are_tagged_by_the_news_aliases():
    body = json.dumps({"items": [
        {"headline": "Bitcoin slides as ETF outflows mount", "source": "reuters"},
        {"headline": "Solana and bitcoin rally", "source": "reuters", "symbols": ["SOLUSDT"]},
        {"headline": "Fed holds rates", "source": "reuters"}]}).encode()
    news = {"trusted_sources": ["webhook:reuters"],
            "aliases": {"BTCUSDT": ["bitcoin", "BTC"], "SOLUSDT": ["solana"]}}
    (resp,), inbox = _post(body, _signed(body), news_table=news)
    assert resp.status_code == 200, resp.text
    assert [i.symbols for i in inbox.items] == [("BTCUSDT",), ("SOLUSDT", "BTCUSDT"), ()]


def _two_replicas(dsn: str, posts: list[tuple[int, bytes, dict]]) -> tuple[list, list]:
    """Two app instances (two Ingress replicas) sharing the PostgreSQL replay memory;
    ``posts``: (which replica, body, headers)."""
    inboxes = [Inbox(), Inbox()]

    async def go():
        mp = pytest.MonkeyPatch()
        mp.setenv(SECRET_ENV, SECRET.decode())
        try:
            apps = [build_app(inbox, SimpleNamespace(), SymbolTable(["SOLUSDT"]),
                              token="t0k3n", replay_dsn=dsn) for inbox in inboxes]
        finally:
            mp.undo()
        clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=a),
                                     base_url="http://api") for a in apps]
        try:
            return [await clients[i].post(PATH, content=b, headers=h) for i, b, h in posts]
        finally:
            for c in clients:
                await c.aclose()

    return asyncio.run(go()), inboxes


def test_a_replay_sent_to_another_replica_is_refused(migrated_db):
    import asyncpg

    body = _body(headline="Exchange halts SOL withdrawals")
    headers = _signed(body)
    stale = int(time.time()) - 3_600

    async def seed() -> None:
        conn = await asyncpg.connect(migrated_db)
        try:
            await conn.execute("INSERT INTO webhook_replay VALUES ('old', $1)", stale)
        finally:
            await conn.close()

    asyncio.run(seed())
    (first, replayed), (a, b) = _two_replicas(migrated_db, [(0, body, headers),
                                                            (1, body, headers)])
    assert first.status_code == 200, first.text
    assert replayed.status_code == 409 and replayed.json()["error"]["code"] == "replayed"
    assert len(a.items) == 1 and b.items == []

    async def rows() -> list:
        conn = await asyncpg.connect(migrated_db)
        try:
            return [tuple(r) for r in await conn.fetch("SELECT digest, ts_s FROM webhook_replay")]
        finally:
            await conn.close()

    kept = asyncio.run(rows())
    assert ("old", stale) not in kept  # pruned: past the window it could not pass anyway
    assert [ts for _, ts in kept] == [int(headers[TIMESTAMP_HEADER])]
    assert headers[SIGNATURE_HEADER] not in str(kept)  # a digest, not the signature


def test_without_its_replay_memory_the_webhook_refuses(tmp_path):
    from tests.serve_apps.conftest import free_port

    body = _body()
    (resp,), inbox = _post(body, _signed(body),
                           replay_dsn=f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "unavailable"
    assert inbox.items == []
