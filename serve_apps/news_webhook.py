"""``POST /v1/news/webhook``: pushed news, authenticated by an HMAC-SHA256 signature.

A news vendor pushes headlines without the API's bearer token; it signs each request
instead, with a shared secret from the environment (``TRIPWIRE_NEWS_WEBHOOK_SECRET``):

* ``X-Tripwire-Timestamp``: the Unix time of sending, in whole seconds;
* ``X-Tripwire-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + raw body``.

The signature is checked over the raw bytes before the body is parsed (a caller without the
secret learns nothing: 401 whatever the body). A timestamp more than ``max_skew_s`` (300 s)
from the server's clock is a 401, and a signature already accepted within that window is a
409 ``replayed``: a captured request cannot be sent again. With no secret configured every
request is a 401 (fail closed). The body is ``{"items": [{"headline", "source", "symbols",
"published_ns", "id", "body"}]}``; each item's provenance is ``webhook:<source>`` (so
``[news] trusted_sources`` must name ``webhook:reuters`` to trust Reuters pushed here: a
pusher cannot borrow an RSS source's trust) and its ``ts_ns`` is ``max(published_ns,
arrival)`` (no look-ahead). The items then go where ``POST /v1/news`` sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, ValidationError

from serve_apps.contract import INT64_MAX, Text, responses
from tripwire.model import NewsItem, new_id

PATH = "/v1/news/webhook"
SECRET_ENV = "TRIPWIRE_NEWS_WEBHOOK_SECRET"
TIMESTAMP_HEADER = "X-Tripwire-Timestamp"
SIGNATURE_HEADER = "X-Tripwire-Signature"
MAX_SKEW_S = 300
MAX_BODY_BYTES = 1024 * 1024
MAX_REMEMBERED = 100_000  # accepted signatures kept for replay checks (within the window)
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


class WebhookGuard:
    """Signature, clock-window and replay checks (state: the signatures accepted lately)."""

    def __init__(self, secret: bytes | None, *, max_skew_s: int = MAX_SKEW_S,
                 now_s: Callable[[], float] = time.time) -> None:
        self.secret = secret or None
        self.max_skew_s = max_skew_s
        self.now_s = now_s
        self._seen: OrderedDict[str, int] = OrderedDict()

    def check(self, timestamp: str | None, signature: str | None, body: bytes) -> str | None:
        """None when the request is authentic and fresh; else (status, why) as a string
        ``"401 ..."``/``"409 ..."`` (the caller maps it to the error body)."""
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
        self._forget(now)
        if signature in self._seen:
            return "409 this signed request was accepted already (a replay)"
        self._seen[signature] = int(timestamp)
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)
        return None

    def _forget(self, now: float) -> None:
        # Signatures older than the window cannot pass the clock check any more.
        while self._seen:
            sig, ts = next(iter(self._seen.items()))
            if now - ts <= self.max_skew_s:
                break
            self._seen.pop(sig)


def items_of(body: PushedNewsBody, arrival_ns: int) -> list[NewsItem]:
    return [NewsItem(n.id or new_id(), max(n.published_ns, arrival_ns), n.headline,
                     tuple(n.symbols), SOURCE_PREFIX + n.source, n.body, n.published_ns)
            for n in body.items]


def add_news_webhook(app: FastAPI, deliver: Callable[[list[NewsItem]], Any],
                     error: Callable[[int, str, str, str | None], Exception], *,
                     guard: WebhookGuard | None = None) -> WebhookGuard:
    """Register the route on ``app``; ``deliver`` takes the items (``backend.news``),
    ``error(status, code, message, field)`` builds the API's error exception."""
    if guard is None:
        secret = os.environ.get(SECRET_ENV, "")
        guard = WebhookGuard(secret.encode() if secret else None)

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
        problem = guard.check(request.headers.get(TIMESTAMP_HEADER),
                              request.headers.get(SIGNATURE_HEADER), body)
        if problem is not None:
            status, message = int(problem[:3]), problem[4:]
            raise error(status, "unauthorized" if status == 401 else "replayed", message, None)
        try:
            parsed = PushedNewsBody.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            if first["type"] == "json_invalid":
                raise error(400, "unparsable_body", f"not JSON: {first['msg']}", None) from None
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise error(422, "invalid", f"{where}: {first['msg']}", where) from None
        return await deliver(items_of(parsed, time.time_ns()))

    return guard
