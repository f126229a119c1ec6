"""A loopback WebSocket server that replays a venue's frames, with faults.

:class:`ReplayServer` listens on 127.0.0.1 (a free port) and sends a list of frames, in
order, to each connection. Each connection follows a :class:`Session` script: where to start
in the list (earlier than the last frame sent makes an overlap, later makes a gap), where to
stop, and what to do then: hold the connection open, close it (code 1001, like Binance's
daily disconnect), drop the TCP connection, go silent, or stall so that the client's pings
go unanswered. ``gate(i)`` holds frame ``i`` back until the test releases it.

With ``require_subscribe`` it sends nothing until :meth:`ReplayServer.on_request` reports a
subscription, and then only the frames of the subscribed streams (frames whose
:meth:`ReplayServer.stream_of` is None, garbage included, always go out). A venue's server
subclasses it for its own request protocol (``tests/adapters/<venue>/server.py``).

Stalling: websockets answers pings inside the protocol, even when the handler never reads,
so a stalled connection pauses the transport's reading (``transport.pause_reading()``); the
server itself must not ping (``ping_interval=None``) or it would time out its own pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode


class Then(StrEnum):
    """What a connection does after its session's frames are sent."""

    HOLD = "hold"  # stay open (answer pings, read requests) until the client or server ends
    CLOSE = "close"  # close handshake, code 1001 (Binance's 24-hour disconnect)
    DROP = "drop"  # abort the TCP connection, no close frame
    SILENT = "silent"  # stay open and answer pings, send nothing (idle connection)
    STALL = "stall"  # stop reading: pings go unanswered, nothing is sent


@dataclass(frozen=True)
class Session:
    """One connection's script: frames ``[start, end)`` then ``then``.

    ``start`` None continues after the last frame sent; ``end`` None runs to the list's end.
    """

    start: int | None = None
    end: int | None = None
    then: Then = Then.HOLD


@dataclass
class ConnectionLog:
    """What happened on one connection, for assertions."""

    path: str
    requests: list[dict] = field(default_factory=list)  # decoded client messages
    subscribed: list[str] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # indices of the frames sent
    ended: str = ""


class ReplayServer:
    """Replays ``frames`` to each connection per ``sessions`` (then ``Session()`` for more).

    A venue subclasses it for its request protocol: :meth:`on_request` answers one client
    message (and says whether it subscribed), :meth:`stream_of` names a frame's stream so
    that only subscribed streams are sent when ``require_subscribe``.
    """

    def __init__(
        self,
        frames: Sequence[str | bytes],
        sessions: Sequence[Session] = (),
        *,
        require_subscribe: bool = False,
        close_timeout: float = 0.5,
    ) -> None:
        self.frames = list(frames)
        self.sessions = list(sessions)
        self.require_subscribe = require_subscribe
        self.close_timeout = close_timeout
        self.connections: list[ConnectionLog] = []
        self.cursor = 0  # index of the next frame after the last one sent
        self._streams = [self.stream_of(f) for f in self.frames]
        self._gates: dict[int, asyncio.Event] = {}
        self._server: Server | None = None
        self._stopping = asyncio.Event()
        self._superseded = asyncio.Event()  # set when a newer connection arrives

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> ReplayServer:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            ping_interval=None,
            close_timeout=self.close_timeout,
            compression=None,
        )
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> ReplayServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The base URL to give the feed (it appends ``/stream?...``)."""
        return f"ws://127.0.0.1:{self.port}"

    def gate(self, index: int) -> asyncio.Event:
        """An event that must be set before frame ``index`` is sent."""
        return self._gates.setdefault(index, asyncio.Event())

    # -- one connection ------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self._superseded.set()  # release stalled/silent predecessors
        self._superseded = superseded = asyncio.Event()
        conn = ConnectionLog(path=ws.request.path if ws.request is not None else "")
        self.connections.append(conn)
        session = self._session(len(self.connections) - 1)
        subscribed = asyncio.Event()
        if not self.require_subscribe:
            conn.subscribed = self.streams_in_path(conn.path)
        reader = asyncio.create_task(self._read_requests(ws, conn, subscribed))
        try:
            if self.require_subscribe and not await self._until(ws, subscribed):
                return
            await self._send(ws, conn, session)
            await self._finish(ws, conn, session.then, reader, superseded)
        except ConnectionClosed:
            conn.ended = conn.ended or "closed by client"
        finally:
            reader.cancel()

    def _session(self, k: int) -> Session:
        return self.sessions[k] if k < len(self.sessions) else Session()

    async def _read_requests(
        self, ws: ServerConnection, conn: ConnectionLog, subscribed: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                if await self.on_request(ws, conn, message):
                    subscribed.set()

    # -- what a venue writes -------------------------------------------------------------

    async def on_request(self, ws: ServerConnection, conn: ConnectionLog, message) -> bool:
        """Answer one client message; True when it subscribed (``conn.subscribed`` updated)."""
        conn.requests.append(json.loads(message))
        return False

    def streams_in_path(self, path: str) -> list[str]:
        """Streams named by the connection's URL (when subscribing is not required)."""
        return []

    def stream_of(self, frame: str | bytes) -> str | None:
        """The stream a frame belongs to; None for frames always sent (garbage included)."""
        return None

    async def _send(self, ws: ServerConnection, conn: ConnectionLog, session: Session) -> None:
        start = self.cursor if session.start is None else session.start
        end = len(self.frames) if session.end is None else min(session.end, len(self.frames))
        for i in range(start, end):
            gate = self._gates.get(i)
            if gate is not None and not await self._until(ws, gate):
                return
            stream = self._streams[i]
            if self.require_subscribe and stream is not None and stream not in conn.subscribed:
                continue
            await ws.send(self.frames[i])
            conn.sent.append(i)
            self.cursor = i + 1

    async def _finish(
        self,
        ws: ServerConnection,
        conn: ConnectionLog,
        then: Then,
        reader: asyncio.Task,
        superseded: asyncio.Event,
    ) -> None:
        conn.ended = then.value
        if then is Then.CLOSE:
            await ws.close(CloseCode.GOING_AWAY, "24h connection limit")
        elif then is Then.DROP:
            ws.transport.abort()
        elif then is Then.STALL:
            reader.cancel()
            ws.transport.pause_reading()  # no more pongs: the client must notice
            await self._until(None, superseded)
            ws.transport.abort()
        elif then is Then.SILENT:
            await self._until(ws, superseded)
            ws.transport.abort()
        else:
            await self._until(ws, asyncio.Event())

    async def _until(self, ws: ServerConnection | None, event: asyncio.Event) -> bool:
        """Wait for ``event``; False if the connection closed or the server stopped first."""
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopping.wait())]
        if ws is not None:
            waits.append(asyncio.ensure_future(ws.wait_closed()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return event.is_set() and not self._stopping.is_set()
