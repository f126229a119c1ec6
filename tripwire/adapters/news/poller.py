"""RSS/Atom sources polled over HTTP: conditional GETs, rate limits, silence, de-duplication.

:class:`NewsPoller` is a :class:`~tripwire.feeds.base.Feed` whose chunks carry news (no
ticks). Per source, each request:

* is **conditional**: the last answer's ``ETag`` and ``Last-Modified`` go back as
  ``If-None-Match``/``If-Modified-Since``; a ``304`` costs no parsing and counts as an
  answer (the source is alive);
* is **rate limited**: at most one request per ``min_interval_s``, later when the source
  said so (``429``/``503`` with ``Retry-After``);
* is **bounded**: ``timeout_s``, and a body over ``max_body_bytes`` is refused (counted);
* yields its **new** headlines only: a headline already seen from any source (same
  normalised title or same canonical link) is a counted duplicate; a headline published
  more than ``max_age_s`` before it arrived is ``stale`` (a feed's backlog is not news);
* keeps going: a malformed document is a dead letter (``malformed``, the XML error named),
  an HTTP error or a timeout is counted by reason, and the next source is polled.

Time (no look-ahead): a headline's ``ts_ns`` is ``max(published, arrival)`` where arrival is
the injected clock at the answer; ``published_ns`` keeps the source's time.

**Silence.** A source with no new headline for ``silence_after_s`` (counted from the
start) is *silent*, whether it answers ``304`` or not at all: ``stats()['sources'][name]
['silent']``, each fall into silence counted (``silences``) and logged. ``last_ok_ns`` (the
last answer, 200 or 304) and ``heartbeat_ns`` (the last poll round) are the watchdog's
heartbeats: a poller whose heartbeat stops is dead; a source whose ``last_ok_ns`` stops
is unreachable; one that answers but says nothing new is silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tripwire.adapters.news.config import NewsConfig, NewsSource
from tripwire.adapters.news.instruments import SymbolTagger
from tripwire.adapters.news.schemas import Entry, dedup_keys, item_id, parse_document
from tripwire.feeds.base import FeedChunk
from tripwire.model import (
    NS_PER_SECOND,
    Clock,
    DeadLetter,
    NewsItem,
    SymbolTable,
    SystemClock,
    TickBatch,
)

log = logging.getLogger(__name__)

SOURCE = "news-rss"
MAX_BODY_BYTES = 5 * 1024 * 1024
USER_AGENT = "tripwire-news/1 (+conditional GET)"


@dataclass
class SourceState:
    """One source's conditional-GET validators, schedule, heartbeats and counters."""

    source: NewsSource
    etag: str | None = None
    last_modified: str | None = None
    next_due: float = 0.0  # event-loop time of the next allowed request
    last_ok_ns: int = 0
    last_new_ns: int = 0
    silent: bool = False
    n: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("requests", "ok", "not_modified", "items", "duplicates", "stale", "malformed",
         "errors", "too_large", "silences", "retry_after"), 0))
    errors: dict[str, int] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {"url": self.source.url, "silent": self.silent, "last_ok_ns": self.last_ok_ns,
                "last_new_ns": self.last_new_ns, "etag": self.etag is not None,
                **self.n, "error_reasons": dict(self.errors)}


class NewsPoller:
    """Polls ``config.sources``; a Feed of news (see the module doc)."""

    live = True

    def __init__(self, config: NewsConfig, *, clock: Clock | None = None,
                 client: httpx.AsyncClient | None = None, max_age_s: float = 3600.0,
                 max_body_bytes: int = MAX_BODY_BYTES, source: str = SOURCE) -> None:
        if not config.sources:
            raise ValueError("news: no sources to poll (news.sources is empty)")
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s!r}")
        self.config = config
        self.source = source
        self.clock = clock or SystemClock()
        # No ticks come from news: an empty table, so a MultiFeed beside an exchange feed
        # does not see the aliases' symbols as a second source of the same names.
        self.symbols = SymbolTable()
        self.tagger = SymbolTagger(config.aliases)
        self.max_age_ns = int(max_age_s * NS_PER_SECOND)
        self.max_body_bytes = max_body_bytes
        self._client = client
        self._own_client = client is None
        self._states = {s.name: SourceState(s) for s in config.sources}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._started_ns = 0
        self._heartbeat_ns = 0
        self._rounds = 0
        self._stopping = False
        self._wake: asyncio.Event | None = None

    # -- the Feed protocol ---------------------------------------------------------------

    async def chunks(self) -> AsyncIterator[FeedChunk]:
        """A chunk per poll round that found news or dead letters, until :meth:`stop`."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._started_ns = self.clock.now_ns()
        try:
            while not self._stopping:
                news, dead = await self.poll_due(loop.time())
                if news or dead:
                    yield FeedChunk(TickBatch.empty(), dead, [], news)
                wait = min(s.next_due for s in self._states.values()) - loop.time()
                if wait > 0 and not self._stopping:
                    self._wake.clear()
                    try:
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
        finally:
            await self.aclose()

    def stop(self) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def heartbeats(self) -> dict[str, int]:
        """For the watchdog: ``feed:<source>`` is the last poll round (the poller lives),
        ``feed:<source>:<name>`` each source's last answer (200 or 304)."""
        beats = {f"feed:{self.source}": self._heartbeat_ns}
        for name, state in self._states.items():
            beats[f"feed:{self.source}:{name}"] = state.last_ok_ns
        return beats

    def stats(self) -> dict[str, Any]:
        self._check_silence(self.clock.now_ns())
        states = self._states.values()
        return {
            "source": self.source,
            "rounds": self._rounds,
            "heartbeat_ns": self._heartbeat_ns,
            "last_message_ns": self._heartbeat_ns,
            "heartbeats": self.heartbeats(),
            "items": sum(s.n["items"] for s in states),
            "duplicates": sum(s.n["duplicates"] for s in states),
            "malformed": sum(s.n["malformed"] for s in states),
            "silent": sorted(s.source.name for s in states if s.silent),
            "sources": {s.source.name: s.view() for s in states},
        }

    # -- polling ---------------------------------------------------------------------------

    async def poll_due(self, now_loop: float) -> tuple[list[NewsItem], list[DeadLetter]]:
        """Poll every source whose turn has come (one request each); their new items."""
        if not self._started_ns:
            self._started_ns = self.clock.now_ns()
        news: list[NewsItem] = []
        dead: list[DeadLetter] = []
        for state in self._states.values():
            if state.next_due > now_loop or self._stopping:
                continue
            state.next_due = now_loop + state.source.min_interval_s
            items, letter = await self._poll(state)
            news.extend(items)
            if letter is not None:
                dead.append(letter)
        self._rounds += 1
        self._heartbeat_ns = self.clock.now_ns()
        self._check_silence(self._heartbeat_ns)
        return news, dead

    async def _poll(self, state: SourceState) -> tuple[list[NewsItem], DeadLetter | None]:
        src = state.source
        headers = {"User-Agent": USER_AGENT, "Accept": "application/rss+xml, "
                   "application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1"}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        state.n["requests"] += 1
        try:
            status, resp_headers, body = await self._get(src, headers)
        except httpx.TimeoutException:
            return self._error(state, "timeout"), None
        except httpx.HTTPError as exc:
            log.warning("news %s: %s: %r", src.name, src.url, exc)
            return self._error(state, "connect"), None
        except _TooLarge:
            state.n["too_large"] += 1
            return self._error(state, "too_large"), None
        arrival = self.clock.now_ns()
        if status == 304:
            state.n["not_modified"] += 1
            state.last_ok_ns = arrival
            return [], None
        if status != 200:
            retry = _retry_after(resp_headers.get("retry-after"))
            if status in (429, 503) and retry is not None:
                state.n["retry_after"] += 1
                loop = asyncio.get_running_loop()
                state.next_due = max(state.next_due, loop.time() + min(retry, 3600.0))
            return self._error(state, f"http_{status}"), None
        entries, letter = parse_document(body, source=f"{self.source}:{src.name}",
                                         now_ns=arrival)
        if letter is not None:
            state.n["malformed"] += 1  # validators kept: the next poll fetches it in full
            log.warning("news %s: %s", src.name, letter.detail)
            return [], letter
        state.etag = resp_headers.get("etag") or None
        state.last_modified = resp_headers.get("last-modified") or None
        state.last_ok_ns = arrival
        state.n["ok"] += 1
        items = [item for e in entries if (item := self._item(state, e, arrival)) is not None]
        if items:
            state.last_new_ns = arrival
        state.n["items"] += len(items)
        return items, None

    async def _get(self, src: NewsSource, headers: dict[str, str]
                   ) -> tuple[int, httpx.Headers, bytes]:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=True, trust_env=True)
        async with self._client.stream("GET", src.url, headers=headers,
                                       timeout=src.timeout_s) as resp:
            chunks, size = [], 0
            async for part in resp.aiter_bytes():
                size += len(part)
                if size > self.max_body_bytes:
                    raise _TooLarge
                chunks.append(part)
            return resp.status_code, resp.headers, b"".join(chunks)

    def _item(self, state: SourceState, entry: Entry, arrival: int) -> NewsItem | None:
        published = entry.published_ns
        if published is not None and arrival - published > self.max_age_ns:
            state.n["stale"] += 1
            return None
        keys = dedup_keys(entry)
        if any(k in self._seen for k in keys):
            state.n["duplicates"] += 1
            return None
        for k in keys:
            self._seen[k] = None
        while len(self._seen) > self.config.max_seen:
            self._seen.popitem(last=False)
        ts = arrival if published is None else max(published, arrival)
        body = " ".join(x for x in (entry.summary[:1000], entry.link) if x)
        return NewsItem(item_id(entry), ts, entry.title, self.tagger.tag(entry.title),
                        state.source.name, body, published or 0)

    def _error(self, state: SourceState, reason: str) -> list[NewsItem]:
        state.n["errors"] += 1
        state.errors[reason] = state.errors.get(reason, 0) + 1
        return []

    def _check_silence(self, now: int) -> None:
        for state in self._states.values():
            since = max(state.last_new_ns, self._started_ns)
            silent = bool(since) and now - since > state.source.silence_after_s * NS_PER_SECOND
            if silent and not state.silent:
                state.n["silences"] += 1
                log.warning("news %s: silent for %.0f s (last answer %s ns, last new %s ns)",
                            state.source.name, (now - since) / NS_PER_SECOND,
                            state.last_ok_ns, state.last_new_ns)
            state.silent = silent


class _TooLarge(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the rate limit's own interval applies
