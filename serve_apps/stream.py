"""Live views on NOTIFY: one listener per ingress replica, fanned out to every open stream.

A :class:`StreamHub` holds ONE :meth:`~tripwire.store.decisions.DecisionStore.listen_changes`
subscription (on PostgreSQL: one connection LISTENing on ``tripwire_changes`` and
``tripwire_halt``, see migration 0013) for all the SSE clients of its process. A note names
a changed row; the hub reads that row once (one query per change, whatever the number of
clients) and hands the event to every client's bounded queue. Nothing runs while nothing
changes: an idle replica with any number of open streams sends no query (the streams' pings
are local).

Nothing is missed silently:

* the hub listens before a client's first read (:meth:`StreamHub.ready`), so a change that
  commits between a client's initial snapshot and its first note is seen by one of them;
* when the listener's connection is lost (server restart, ``pg_terminate_backend``, a read
  that fails) the hub listens again with exponential backoff and then sends every client a
  full refresh (:data:`REFRESH` followed by the snapshot), read once;
* a client too slow to take its events (its queue of :data:`CLIENT_QUEUE` full) is marked
  and gets :data:`RESYNC` instead: it reads the snapshot itself; the drops are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from tripwire.store.decisions import CHANGES, HALT, DecisionStore

log = logging.getLogger(__name__)

CLIENT_QUEUE = 2_000  # events one client may lag by before it is resynchronised instead
NOTE_QUEUE = 20_000  # notes the hub may lag by before it drops them and refreshes everyone
BACKOFF_S = (0.1, 5.0)  # first and longest wait between two attempts to listen again
REFRESH = ("refresh", None)  # the hub's snapshot follows: views reload what they show
RESYNC = ("resync", None)  # this client lost events: it reads the snapshot itself
_LOST = object()

Event = tuple[str, Any]  # (name, row); the hub's carry a third item: the rendered text
Snapshot = Callable[[], Awaitable[list[Event]]]
Render = Callable[[str, Any], str]


class StreamClient:
    """One open stream's inbox: bounded; past its bound it asks for a refresh instead."""

    def __init__(self) -> None:
        self._events: deque[Event] = deque()
        self._wake = asyncio.Event()
        self.resync = False
        self.dropped = 0

    def put(self, event: Event) -> None:
        if self.resync:
            self.dropped += 1
        elif len(self._events) >= CLIENT_QUEUE:
            self._events.clear()
            self.resync = True
            self.dropped += 1
        else:
            self._events.append(event)
        self._wake.set()

    async def next(self, timeout_s: float) -> Event | None:
        """The next event, :data:`RESYNC` after an overflow, or None after ``timeout_s``."""
        if not self._events and not self.resync:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout_s)
        if self.resync:
            self.resync = False
            return RESYNC
        return self._events.popleft() if self._events else None


class StreamHub:
    """The one listener of a process and its fan-out (see the module docstring)."""

    def __init__(self, store: DecisionStore, snapshot: Snapshot,
                 render: Render | None = None) -> None:
        self._store = store
        self._snapshot = snapshot
        # Rendered once per change, not once per client: fifty streams share one text.
        self._render = render
        self._clients: set[StreamClient] = set()
        self._notes: deque[Any] = deque()
        self._wake: asyncio.Event | None = None
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._overflow = False
        self.stats = {"notes": 0, "reads": 0, "listens": 0, "refreshes": 0,
                      "notes_dropped": 0, "clients": 0}

    # -- clients ---------------------------------------------------------------------------

    def subscribe(self) -> StreamClient:
        """A new client; the listener starts with the first (on the caller's loop)."""
        if self._task is None or self._task.done():
            self._wake, self._ready = asyncio.Event(), asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="stream-hub")
        client = StreamClient()
        self._clients.add(client)
        self.stats["clients"] = len(self._clients)
        return client

    def unsubscribe(self, client: StreamClient) -> None:
        self._clients.discard(client)
        self.stats["clients"] = len(self._clients)

    async def ready(self, timeout_s: float) -> bool:
        """Whether the hub listens (waiting up to ``timeout_s``). A client reads its first
        snapshot after this, so no change falls between that read and the first note."""
        if self._ready is None:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        return self._ready.is_set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    # -- the listener ----------------------------------------------------------------------

    def _on_note(self, channel: str, note: dict[str, Any]) -> None:
        """The store's callback: queue only (it runs inside the connection's protocol)."""
        self.stats["notes"] += 1
        if len(self._notes) >= NOTE_QUEUE:
            self._overflow = True  # everyone gets a refresh instead of what was dropped
            self.stats["notes_dropped"] += 1
        else:
            self._notes.append((channel, note))
        self._wake.set()

    def _on_lost(self) -> None:
        self._notes.append(_LOST)
        self._wake.set()

    async def _run(self) -> None:
        delay = BACKOFF_S[0]
        first = True
        while True:
            try:
                stop = await self._store.listen_changes(self._on_note, on_lost=self._on_lost)
            except Exception as exc:  # a database down: listen again later
                log.warning("stream: cannot listen (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_S[1])
                continue
            self.stats["listens"] += 1
            self._ready.set()
            try:
                if not first:  # notes sent while nobody listened are gone: read everything
                    await self._refresh()
                first = False
                await self._pump()
                log.warning("stream: the listener's connection was lost; listening again")
            except Exception as exc:  # a read failed: listen again, refresh
                log.warning("stream: %s; listening again", exc)
            finally:
                self._ready.clear()
                with contextlib.suppress(Exception):
                    await stop()
            delay = BACKOFF_S[0]
            await asyncio.sleep(delay)

    async def _pump(self) -> None:
        """Turn notes into events until the connection is lost."""
        while True:
            while not self._notes and not self._overflow:
                self._wake.clear()
                await self._wake.wait()
            if self._overflow:
                self._overflow = False
                self._notes.clear()
                await self._refresh()
                continue
            batch: list[tuple[str, dict[str, Any]]] = []
            while self._notes:
                note = self._notes.popleft()
                if note is _LOST:
                    return
                batch.append(note)
            for event in await self._read(batch):
                self._publish(event)

    async def _read(self, notes: list[tuple[str, dict[str, Any]]]) -> list[Event]:
        """The events of a batch of notes: each changed row read once, in note order."""
        events: list[Event] = []
        done: set[tuple[str, str]] = set()
        for channel, note in notes:
            key = (HALT, "") if channel == HALT else (note.get("table", ""),
                                                       str(note.get("id", "")))
            if key in done:
                continue
            done.add(key)
            event = await self._event(channel, note)
            if event is not None:
                events.append(event)
        return events

    async def _event(self, channel: str, note: dict[str, Any]) -> Event | None:
        if channel == HALT:
            self.stats["reads"] += 1
            h = await self._store.read_halt()  # the note's reason is cut short; the row is not
            return "halt", {"id": "flag", "halted": h.halted, "reason": h.reason,
                            "set_by": h.by}
        if channel != CHANGES:
            return None
        table, row_id = note.get("table"), note.get("id")
        if table in ("orders", "fills", "runs"):  # the note says enough: views re-read
            return {"orders": "order", "fills": "fill", "runs": "run"}[table], note
        self.stats["reads"] += 1
        if table == "incidents":
            row = await self._store.incident(row_id)
            return None if row is None else ("incident", row)
        if table == "verdicts":
            row = await self._store.verdict(row_id)
            return None if row is None else ("verdict", row)
        if table in ("proposals", "approvals"):
            row = await self._store.proposal(row_id)
            if row is None:
                return None
            approval = await self._store.approval(row_id)
            waiting = approval is not None and approval.status == "pending"
            return "decision", {**row, "awaiting_approval": waiting}
        return None

    async def _refresh(self) -> None:
        """Every client: :data:`REFRESH`, then the snapshot (read once)."""
        self.stats["refreshes"] += 1
        rows = await self._snapshot()
        for client in list(self._clients):
            client.put(REFRESH)
            for event in rows:
                client.put(event)

    def _publish(self, event: Event) -> None:
        if self._render is not None and self._clients:
            event = (event[0], event[1], self._render(*event))
        for client in list(self._clients):
            client.put(event)
