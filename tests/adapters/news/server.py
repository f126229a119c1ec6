"""A loopback HTTP server serving recorded RSS/Atom feeds, with conditional GETs and faults.

Each path serves a :class:`Route`: its body (recorded XML), an ETag, and a mode -- ``ok``
(200, or 304 when ``If-None-Match`` matches the ETag), ``error`` (a status, optionally with
``Retry-After``) or ``hang`` (answers nothing until the client gives up). Every request is
logged with the conditional headers it carried.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from aiohttp import web

DATA = Path(__file__).parent / "data"


def recorded(name: str, *, pub1_ns: int, pub2_ns: int) -> bytes:
    """A recorded feed with its publication times filled in (RSS or Atom format)."""
    text = (DATA / name).read_text()
    atom = "<feed" in text
    def fmt(ns: int) -> str:
        when = datetime.fromtimestamp(ns / 1e9, tz=UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ") if atom else format_datetime(when, usegmt=True)
    return text.replace("{PUB1}", fmt(pub1_ns)).replace("{PUB2}", fmt(pub2_ns)).encode()


@dataclass
class Route:
    body: bytes = b""
    etag: str | None = None
    mode: str = "ok"  # ok | error | hang
    status: int = 500
    retry_after: str | None = None
    requests: list[dict] = field(default_factory=list)


class FeedServer:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()  # releases hanging handlers at shutdown
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = self.routes.get(request.path)
        if route is None:
            return web.Response(status=404)
        route.requests.append({"if_none_match": request.headers.get("If-None-Match"),
                               "if_modified_since": request.headers.get("If-Modified-Since")})
        if route.mode == "hang":
            await self._closing.wait()
        if route.mode == "error":
            headers = {"Retry-After": route.retry_after} if route.retry_after else {}
            return web.Response(status=route.status, headers=headers)
        if route.etag and request.headers.get("If-None-Match") == route.etag:
            return web.Response(status=304, headers={"ETag": route.etag})
        headers = {"ETag": route.etag} if route.etag else {}
        headers["Last-Modified"] = "Mon, 07 Dec 2026 06:00:00 GMT"
        return web.Response(body=route.body, content_type="application/rss+xml",
                            headers=headers)

    async def __aenter__(self) -> FeedServer:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        self._closing.set()
        await self._runner.cleanup()
