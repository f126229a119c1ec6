"""``POST /v1/news/webhook``: pushed news, authenticated by an HMAC-SHA256 signature.

A news vendor pushes headlines without the API's bearer token; it signs each request
instead, with a shared secret from the environment (``TRIPWIRE_NEWS_WEBHOOK_SECRET``):

* ``X-Tripwire-Timestamp``: the Unix time of sending, in whole seconds;
* ``X-Tripwire-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + raw body``.

The signature is checked over the raw bytes before the body is parsed (a caller without the
secret learns nothing: 401 whatever the body). A timestamp more than ``max_skew_s`` (300 s)
from the server's clock is a 401, and a signature already accepted within that window is a
409 ``replayed``: a captured request cannot be sent again. The accepted signatures are kept
in PostgreSQL (``webhook_replay``: the signature's sha256 digest and the request's
timestamp, pruned past the window) when the app has a database, so a replay sent to another
Ingress replica is refused too; without one (unit tests) a bounded in-process memory is used.
With no secret configured every request is a 401 (fail closed). The body is ``{"items":
[{"headline", "source", "symbols", "published_ns", "id", "body"}]}``; each item's provenance
is ``webhook:<source>`` (so ``[news] trusted_sources`` must name ``webhook:reuters`` to trust
Reuters pushed here: a pusher cannot borrow an RSS source's trust), its symbols are the
pushed ones plus those the ``[news] aliases`` find in the headline (as for RSS items), and
its ``ts_ns`` is ``max(published_ns, arrival)`` (no look-ahead). The items then go where
``POST /v1/news`` sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, ValidationError

from serve_apps.contract import INT64_MAX, Text, responses
from tripwire.adapters.news.instruments import SymbolTagger
from tripwire.model import NewsItem, new_id

PATH = "/v1/news/webhook"
SECRET_ENV = "TRIPWIRE_NEWS_WEBHOOK_SECRET"
TIMESTAMP_HEADER = "X-Tripwire-Timestamp"
SIGNATURE_HEADER = "X-Tripwire-Signature"
MAX_SKEW_S = 300
MAX_BODY_BYTES = 1024 * 1024
MAX_REMEMBERED = 100_000  # in-process memory: accepted signatures kept (within the window)
SOURCE_PREFIX = "webhook:"


class PushedNews(BaseModel):
    id: Text = Field(default="", max_length=64)
    headline: Text = Field(min_length=1, max_length=500)
    source: Text = Field(min_length=1, max_length=64 - len(SOURCE_PREFIX))
    symbols: list[Text] = Field(default_factory=list, max_length=64)
    published_ns: int = Field(default=0, ge=0, le=INT64_MAX)
    body: Text = Field(default="", max_length=2000)


class PushedNewsBody(BaseModel):
    items: list[PushedNews] = Field(min_length=1, max_length=1000)


def sign(secret: bytes, timestamp: int | str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (for senders, tests).

    >>> sign(b"k", 1700000000, b"{}")[:15]
    'sha256=c6ef4734'
    """
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class ReplayMemory(Protocol):
    """Where accepted signatures are remembered (keyed by the signature's digest)."""

    async def claim(self, digest: str, ts_s: int, oldest_s: int) -> bool:
        """Record ``digest`` (its request signed at ``ts_s``) and say whether it is new;
        entries signed before ``oldest_s`` are forgotten first (they cannot pass any more)."""
        ...


class MemoryReplay:
    """One process's memory (bounded: the oldest of ``MAX_REMEMBERED`` go first)."""

    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self.max_remembered = max_remembered

    async def claim(self, digest: str, ts_s: int, oldest_s: int) -> bool:
        for old in [d for d, ts in self._seen.items() if ts < oldest_s]:
            del self._seen[old]
        if digest in self._seen:
            return False
        self._seen[digest] = ts_s
        while len(self._seen) > self.max_remembered:
            self._seen.popitem(last=False)
        return True


class PgReplay:
    """The shared memory: ``webhook_replay`` in PostgreSQL (migration 0015), so every
    replica refuses a request any replica accepted. The pool is opened on first use (on the
    serving event loop); a database error refuses the request (fail closed: a 503)."""

    def __init__(self, dsn: str, *, max_size: int = 2) -> None:
        self.dsn, self.max_size = dsn, max_size
        self._pool: Any = None

    async def claim(self, digest: str, ts_s: int, oldest_s: int) -> bool:
        import asyncpg

        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=0,
                                                   max_size=self.max_size)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM webhook_replay WHERE ts_s < $1", oldest_s)
            row = await conn.fetchval(
                "INSERT INTO webhook_replay (digest, ts_s) VALUES ($1, $2) "
                "ON CONFLICT (digest) DO NOTHING RETURNING digest", digest, ts_s)
        return row is not None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


class WebhookGuard:
    """Signature, clock-window and replay checks (replays: ``replay``, default in-process)."""

    def __init__(self, secret: bytes | None, *, max_skew_s: int = MAX_SKEW_S,
                 now_s: Callable[[], float] = time.time,
                 replay: ReplayMemory | None = None) -> None:
        self.secret = secret or None
        self.max_skew_s = max_skew_s
        self.now_s = now_s
        self.replay = replay if replay is not None else MemoryReplay()

    async def check(self, timestamp: str | None, signature: str | None,
                    body: bytes) -> str | None:
        """None when the request is authentic and fresh; else (status, why) as a string
        ``"401 ..."``/``"409 ..."``/``"503 ..."`` (the caller maps it to the error body)."""
        if self.secret is None:
            return f"401 the news webhook is not configured ({SECRET_ENV} is not set)"
        if not timestamp or not signature:
            return f"401 {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required"
        if not timestamp.isdigit() or len(timestamp) > 12:
            return f"401 {TIMESTAMP_HEADER} must be whole Unix seconds"
        expected = sign(self.secret, timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            return "401 the signature does not match the body"
        now = self.now_s()
        if abs(now - int(timestamp)) > self.max_skew_s:
            return (f"401 {TIMESTAMP_HEADER} is more than {self.max_skew_s} s from the "
                    "server's clock")
        digest = hashlib.sha256(expected.encode()).hexdigest()
        try:
            fresh = await self.replay.claim(digest, int(timestamp),
                                            int(now) - self.max_skew_s - 1)
        except Exception as exc:  # cannot tell a replay from a first send: refuse
            return f"503 the replay memory is unavailable ({type(exc).__name__})"
        if not fresh:
            return "409 this signed request was accepted already (a replay)"
        return None


def items_of(body: PushedNewsBody, arrival_ns: int,
             tagger: SymbolTagger | None = None) -> list[NewsItem]:
    """News items of a pushed body: the pushed symbols, then those the aliases find."""
    out = []
    for n in body.items:
        symbols = list(dict.fromkeys(n.symbols))
        if tagger is not None:
            symbols += [s for s in tagger.tag(n.headline) if s not in symbols]
        out.append(NewsItem(n.id or new_id(), max(n.published_ns, arrival_ns), n.headline,
                            tuple(symbols), SOURCE_PREFIX + n.source, n.body, n.published_ns))
    return out


def tagger_of(news_table: Mapping[str, Any] | None) -> SymbolTagger | None:
    """The ``[news] aliases`` tagger (validated as the pollers' is), None without aliases."""
    if not news_table or not news_table.get("aliases"):
        return None
    from tripwire.adapters.news.config import NewsConfig

    table = {k: v for k, v in news_table.items() if k != "sources"}
    return SymbolTagger(NewsConfig.from_table(table).aliases)


def add_news_webhook(app: FastAPI, deliver: Callable[[list[NewsItem]], Any],
                     error: Callable[[int, str, str, str | None], Exception], *,
                     guard: WebhookGuard | None = None,
                     news_table: Mapping[str, Any] | None = None,
                     replay_dsn: str | None = None) -> WebhookGuard:
    """Register the route on ``app``; ``deliver`` takes the items (``backend.news``),
    ``error(status, code, message, field)`` builds the API's error exception.
    ``news_table``: the raw ``[news]`` settings (its aliases tag pushed headlines);
    ``replay_dsn``: the PostgreSQL holding the shared replay memory (``webhook_replay``)."""
    tagger = tagger_of(news_table)
    if guard is None:
        secret = os.environ.get(SECRET_ENV, "")
        guard = WebhookGuard(secret.encode() if secret else None,
                             replay=PgReplay(replay_dsn) if replay_dsn else None)

    @app.post(PATH, tags=["write"], responses=responses(413), openapi_extra={
        "parameters": [
            {"name": TIMESTAMP_HEADER, "in": "header", "required": True,
             "description": "Unix seconds when the request was signed",
             "schema": {"type": "string"}},
            {"name": SIGNATURE_HEADER, "in": "header", "required": True,
             "description": "sha256=<hex HMAC-SHA256 of '<timestamp>.' + body>",
             "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": PushedNewsBody.model_json_schema()}}}})
    async def news_webhook(request: Request) -> dict[str, int]:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise error(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes", None)
        problem = await guard.check(request.headers.get(TIMESTAMP_HEADER),
                                    request.headers.get(SIGNATURE_HEADER), body)
        if problem is not None:
            status, message = int(problem[:3]), problem[4:]
            code = {401: "unauthorized", 409: "replayed"}.get(status, "unavailable")
            raise error(status, code, message, None)
        try:
            parsed = PushedNewsBody.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            if first["type"] == "json_invalid":
                raise error(400, "unparsable_body", f"not JSON: {first['msg']}", None) from None
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise error(422, "invalid", f"{where}: {first['msg']}", where) from None
        return await deliver(items_of(parsed, time.time_ns(), tagger))

    return guard
