"""The live service as a job: a feed into the Serve app, orders through the [execution] broker.

::

    ray job submit --working-dir . -- python -m serve_apps.jobs.live \\
        --source binance --streams btcusdt@trade,ethusdt@trade --run-for 3600
    ray job submit --working-dir . -- python -m serve_apps.jobs.live --source scenario --speed 60

It joins the Ray cluster (``RAY_ADDRESS``, set by ``ray job submit``; a local Ray
otherwise), uses ``TRIPWIRE_PG_DSN`` or starts the private PostgreSQL under the data
directory, deploys the Serve app (``[serve]``: host, port, scaling) and reads the feed —
the same feeds as ``tripwire ingest`` (``--source scenario``, or one or several live
sources: ``binance``, ``ccxt:<exchange>=BTC/USDT``, ...) — handing
each chunk's ticks and news to the data plane deployment through its Ray handle (never the
HTTP ingest route, which is for outside producers), in order, each ingest awaited, the feed
reading at most two chunks ahead (backpressure). The scenario runs on market time (its
clock is 2026), a live exchange on wall time. The API and console stay up while it runs
(the bearer token comes from ``TRIPWIRE_API_TOKEN``; without it a random one is kept in
``<data_dir>/secrets/api-token``, mode 0600, and only that path is printed). ``--run-for``
or Ctrl-C stops it: the feed stops, decisions in flight finish, the tick sink flushes. Exit codes:
0 done, 1 a failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from actors.ingest import feed_factory, is_live, normalise_sources
from tripwire.commands.common import UsageError
from tripwire.config import load_settings


def build_parser() -> argparse.ArgumentParser:
    from serve_apps.commands import add_live_arguments, job_parser

    return job_parser("live", __doc__.splitlines()[0], add_live_arguments)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """``tripwire live``: the job on already parsed arguments."""
    err = Console(stderr=True)
    try:
        settings = load_settings(args.config)
        if args.speed is not None and args.speed < 0:
            raise UsageError(f"--speed must be >= 0, got {args.speed}")
        args.speed = args.speed or None
        args.files = []
        if normalise_sources(args, settings) != ["scenario"] and not is_live(args):
            raise UsageError(f"the live job reads the scenario or live sources, not {args.source}")
        make_feed, symbols = feed_factory(args, settings)
    except (ValueError, OSError) as exc:
        err.print(f"[red]live: {exc}[/red]")
        return 2
    from tripwire.store.pg import PgError, PgNotInstalledError, database

    try:
        with database(settings.data_dir) as dsn:
            summary = _run(settings, dsn, make_feed, symbols, args, err)
    except PgNotInstalledError as exc:
        err.print(f"[red]live: {exc}[/red]")
        return 2
    except (PgError, OSError, RuntimeError, TimeoutError) as exc:
        err.print(f"[red]live: {type(exc).__name__}: {exc}[/red]")
        return 1
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        Console().print(summary)
    return 0


def probability_symbols_of(args: argparse.Namespace) -> tuple[str, ...]:
    """The live sources' probability-priced symbols, as ``feed_factory`` found them in the
    feeds' instrument providers (Polymarket tokens): scored on log-odds, as in ingest."""
    return tuple(getattr(args, "probability_symbols", ()))


def _run(settings, dsn: str, make_feed, symbols, args, err: Console) -> dict[str, Any]:
    from ray import serve

    from actors.runtime import ensure_command_ray
    from serve_apps.app import start
    from serve_apps.config import ServeConfig
    from tripwire.store.migrate import migrate

    asyncio.run(migrate(dsn))
    # A local Ray (no address): loopback only, session logs under <data>/ray, token auth.
    data = Path(settings.data_dir)
    ensure_command_ray(data, settings.ray_address)
    token = os.environ.get("TRIPWIRE_API_TOKEN", "").strip()
    if not token:  # never printed: a terminal, a job log or CI output is not a secret store
        from tripwire.secretfile import ensure_secret

        path = data.resolve() / "secrets" / "api-token"
        token = ensure_secret(path, 24)
        err.print(f"operator token (set TRIPWIRE_API_TOKEN to choose it): in {path}")
    base = ServeConfig.from_settings(settings)
    clock = "system" if is_live(args) else "market"  # exchanges on wall time
    app = start(settings, dsn, symbols, config=dataclasses.replace(base, clock=clock),
                token=token, probability_symbols=probability_symbols_of(args))
    err.print(f"serving on {app.url} (console at /, API docs at /docs)")
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    counts: dict[str, int] = {"chunks": 0, "ticks": 0, "accepted": 0, "rejected": 0,
                              "trips": 0, "incidents": 0, "news": 0}
    t0 = time.monotonic()
    try:
        asyncio.run(_pump(make_feed(), app, counts, stop, args.run_for, err, dsn))
    finally:
        drained = app.shutdown()
        serve.shutdown()
    return {"source": args.source, **counts, "wall_s": round(time.monotonic() - t0, 1),
            "ticks_stored": (drained.get("dataplane") or {}).get("ticks"),
            "decisions_unfinished": (drained.get("signoff") or {}).get("unfinished_at_close")}


async def _pump(feed, app, counts: dict[str, int], stop: dict, run_for: float | None,
                err: Console, dsn: str | None = None) -> None:
    beats = _SourceHeartbeats(feed, dsn)
    try:
        await _pump_chunks(feed, app, counts, stop, run_for, err, beats)
    finally:
        await beats.close()


class _SourceHeartbeats:
    """One watchdog heartbeat per live source (``feed:<source>``: when it was last heard).

    Several venues in one process each get their own, so the watchdog's ``feed:*`` check
    sees one silent venue among live ones. Written at most once a second; a database error
    is logged and the run goes on (the heartbeat then goes stale: the watchdog notices).
    """

    def __init__(self, feed, dsn: str | None) -> None:
        self.feed, self.dsn = feed, dsn
        self.store = None
        self.last = 0.0

    async def beat(self) -> None:
        if self.dsn is None or not hasattr(self.feed, "heartbeats"):
            return
        if time.monotonic() - self.last < 1.0:
            return
        self.last = time.monotonic()
        try:
            if self.store is None:
                from tripwire.store.pg_decisions import PgDecisionStore

                self.store = await PgDecisionStore.connect(self.dsn, max_size=1)
            for component, ts_ns in self.feed.heartbeats().items():
                if ts_ns:
                    await self.store.heartbeat(component, ts_ns, "last message")
        except Exception as exc:  # the watchdog sees the stale heartbeat; keep ingesting
            print(f"live: heartbeat not written: {type(exc).__name__}: {exc}", file=sys.stderr)

    async def market_closed(self, closed: dict[str, str]) -> None:
        """Record closed markets (``market:<symbol>``, ``closed: <why>``): the operator's
        heartbeat view shows them and a restarted sign-off service reads them back. Unlike
        a beat, a failure here raises: a closure must not be lost (fail closed)."""
        if self.dsn is None or not closed:
            return
        from tripwire.adapters.market_state import component, detail

        if self.store is None:
            from tripwire.store.pg_decisions import PgDecisionStore

            self.store = await PgDecisionStore.connect(self.dsn, max_size=1)
        for symbol, why in closed.items():
            await self.store.heartbeat(component(symbol), time.time_ns(), detail(why))

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()


READ_AHEAD_CHUNKS = 2  # feed chunks read while the plane ingests (bounded: backpressure)


async def _pump_chunks(feed, app, counts: dict[str, int], stop: dict, run_for: float | None,
                       err: Console, beats: _SourceHeartbeats) -> None:
    """Hand the feed's chunks to the data plane through its deployment handle (Ray, never
    the HTTP ingest route), in order, each ingest awaited before the next.

    The feed reads up to :data:`READ_AHEAD_CHUNKS` chunks ahead (a generated feed builds
    the next chunk while the plane scores this one); when that bound is reached the feed
    waits. A chunk larger than the plane's batch bound (``max_batch_ticks``) goes in
    consecutive parts instead of being refused. On stop, the chunks already read are still
    ingested: nothing taken from the feed is dropped."""
    deadline = None if run_for is None else time.monotonic() + run_for
    max_batch = _max_batch_ticks(app)
    last = 0.0
    ahead = _ReadAhead(feed, READ_AHEAD_CHUNKS)
    try:
        async for chunk in ahead:
            await _hand_over(chunk, app, counts, beats, err, max_batch)
            if time.monotonic() - last > 10:
                last = time.monotonic()
                err.print(f"live: {counts['accepted']:,} ticks, {counts['trips']} trips, "
                          f"{counts['incidents']} incidents")
            if stop["now"] or (deadline is not None and time.monotonic() > deadline):
                break
        for chunk in await ahead.stop():  # read before the stop: ingested, not dropped
            await _hand_over(chunk, app, counts, beats, err, max_batch)
        if ahead.failed is not None:
            raise ahead.failed
    finally:
        await ahead.stop()
    if hasattr(feed, "stop"):
        feed.stop()


async def _hand_over(chunk, app, counts: dict[str, int], beats: _SourceHeartbeats,
                     err: Console, max_batch: int) -> None:
    """One feed chunk to the plane: venue events, news first (an incident sees only news
    older than itself), then the ticks in parts of at most ``max_batch``."""
    await beats.beat()
    if chunk.events:
        await _on_events(chunk.events, app, counts, beats, err)
    if chunk.news:
        await app.dataplane.news.remote(list(chunk.news))
        counts["news"] += len(chunk.news)
    ticks = chunk.ticks
    for lo in range(0, len(ticks), max_batch):
        part = ticks if len(ticks) <= max_batch else ticks.take(slice(lo, lo + max_batch))
        out, _replayed = await app.dataplane.ingest.remote(part)  # (result, replayed)
        counts["ticks"] += len(part)
        for key in ("accepted", "rejected", "trips"):
            counts[key] += out[key]
        counts["incidents"] += len(out["incidents"])
    counts["chunks"] += 1


def _max_batch_ticks(app) -> int:
    """The data plane's batch bound (a bigger ingest is refused, not split): the app's,
    or the plane's default for an app object without a spec."""
    from actors.dataplane import DataPlaneConfig
    from serve_apps.app import dataplane_config

    spec = getattr(app, "spec", None)
    return (dataplane_config(spec) if spec is not None else DataPlaneConfig()).max_batch_ticks


class _ReadAhead:
    """The feed's chunks, read by a task up to ``depth`` ahead of the consumer, in order.

    A feed error reaches the consumer after the chunks read before it. :meth:`stop` ends
    the reading and returns the chunks read but not yet consumed (at most ``depth + 1``:
    the queue's and the one waiting for room); a feed error among them is kept in
    :attr:`failed`."""

    _END = object()

    def __init__(self, feed, depth: int) -> None:
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=depth)
        self._held = None  # taken from the feed, waiting for room in the queue
        self.failed: Exception | None = None  # a feed error found by stop()
        self._task = asyncio.create_task(self._read(feed))

    async def _read(self, feed) -> None:
        try:
            async for chunk in feed.chunks():
                self._held = chunk
                await self._queue.put(chunk)
                self._held = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the consumer, in its place in the stream
            await self._queue.put(_FeedFailed(exc))
            return
        await self._queue.put(self._END)

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await self._queue.get()
        if item is self._END:
            raise StopAsyncIteration
        if isinstance(item, _FeedFailed):
            raise item.exc
        return item

    async def stop(self) -> list:
        """Stop reading; the chunks read and not consumed (none twice)."""
        if not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        left = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _FeedFailed):
                self.failed = item.exc  # after the chunks read before it
            elif item is not self._END:
                left.append(item)
        if self._held is not None:  # stopped while waiting for room: it comes last
            left.append(self._held)
            self._held = None
        return left


@dataclasses.dataclass
class _FeedFailed:
    exc: Exception


async def _on_events(events: list, app, counts: dict[str, int], beats: _SourceHeartbeats,
                     err: Console) -> None:
    """Venue events: a resolved/halted market is recorded, then the sign-off service stops
    trading it (incidents refused by name, the venue refuses new orders on it)."""
    from tripwire.adapters.market_state import closures

    counts["venue_events"] = counts.get("venue_events", 0) + len(events)
    closed = closures(events)
    if not closed:
        return
    await beats.market_closed(closed)
    await app.signoff.close_markets.remote(closed)
    counts["markets_closed"] = counts.get("markets_closed", 0) + len(closed)
    err.print(f"live: market closed, no longer traded: {', '.join(sorted(closed))}")


if __name__ == "__main__":
    sys.exit(main())
