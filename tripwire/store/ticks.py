"""The tick store: ticks, anomalies, dead letters, news and labels in ClickHouse.

One client library, clickhouse-connect, talks to either engine: a ClickHouse server in
production (its database is created when missing; the user needs the right to do so the
first time), or chdb, the ClickHouse engine inside this process, by default. The URLs are
parsed in :mod:`tripwire.store.tick_urls`, the tables are defined in
:mod:`tripwire.store.tick_schema`; this module is the store itself.

chdb hosts one data directory per process and one process per data directory: chdb itself
locks the directory (a second process gets an error, never a corrupt store), and a process
that has one directory open cannot open another until every client on the first is closed.
Two ``TickStore`` s on the same directory in one process share one engine, which is safe
(they are two sessions of one server). In the Ray runtime the tick-sink actor is the only
process that opens the store; every other reader asks that actor, which is why
:meth:`TickStore.read_ticks` takes and returns only plain, picklable values.

Ticks are stored columnar and inserted from the batch's NumPy arrays (``column_oriented``):
there is never a Python object per tick. Replay order is ``(ts, symbol, trade_id)``; pages
are read with keyset pagination (the cursor is the last row's key), and a page never splits
rows that share a key (``LIMIT ... WITH TIES``), so pagination neither loses nor repeats a
tick even inside a run of equal timestamps.

Ticks are idempotent: a trade is ``(symbol, trade_id)`` and :meth:`TickStore.insert_ticks`
skips the ones already stored, so ingesting a file twice stores it once and a replay of
the store never repeats a trade. Ticks without an exchange id get a deterministic negative
id first (:mod:`tripwire.store.trade_ids`). A store written before this rule (schema v1)
is migrated once, when opened: its ticks table is rewritten without repeated trades
(exchange ids; rows without one are kept), so a double ingest done before is undone.

Time filters are half-open everywhere: ``start_ns`` inclusive, ``end_ns`` exclusive.

>>> import tempfile
>>> from tripwire.model import SymbolTable, TickBatch
>>> syms = SymbolTable(["BTCUSDT", "ETHUSDT"])
>>> batch = TickBatch.from_columns([0, 1, 0], [1_000, 1_000, 2_000], [100.0, 5.0, 101.0],
...                                [1.0, 2.0, 0.5], trade_id=[1, 1, 2])
>>> with tempfile.TemporaryDirectory() as tmp, TickStore(f"chdb://{tmp}") as store:
...     store.insert_ticks(batch, syms, source="doc")
...     page, cursor = store.read_ticks(syms, limit=2)
...     rest, done = store.read_ticks(syms, after=cursor, limit=2)
...     page.price.tolist(), cursor, rest.price.tolist(), done
3
([100.0, 5.0], (1000, 'ETHUSDT', 1), [101.0], None)
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import clickhouse_connect
import numpy as np
from clickhouse_connect.driver.exceptions import ClickHouseError

from tripwire.model import (
    Anomaly,
    DeadLetter,
    DeadReason,
    EventKind,
    EventLabel,
    Metric,
    NewsItem,
    RecentTicks,
    SymbolTable,
    TickBatch,
)
from tripwire.store.tick_schema import (
    ANOMALY_COLUMNS,
    DEAD_COLUMNS,
    LABEL_COLUMNS,
    NEWS_COLUMNS,
    NEWS_V3_COLUMN,
    SCHEMA_VERSION,
    TABLE_DDL,
    TABLES,
    TICK_COLUMNS,
    VERSION_TABLE_DDL,
)
from tripwire.store.tick_urls import parse_store_url
from tripwire.store.trade_ids import TradeIds

log = logging.getLogger(__name__)


Cursor = tuple[int, str, int]  # (ts, symbol, trade_id) of the last row of a page
T = TypeVar("T")

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class TickStoreError(RuntimeError):
    """A store operation failed; the message names the operation and the URL (no password)."""


# CAST to String: this engine sorts and maps plain strings several times faster than
# LowCardinality ones (measured: a 100k-row page in ~40 ms instead of ~100 ms).
_SYM = "CAST(symbol, 'String')"
_SID = f"transform({_SYM}, {{table_names:Array(String)}}, {{table_ids:Array(Int32)}}, toInt32(-1))"
_TICK_FIELDS = "sid, ts, price, qty, side, trade_id, recv_ns"

_STATS_KEYS = ("symbol", "ticks", "first_ts", "last_ts", "min_price", "max_price", "last_price",
               "volume", "vwap")
_FIRST_SPAN_NS = 60 * 10**9  # first guess of the time span that holds one page
_MIN_SPAN_NS = 10**6  # a page of equal timestamps must not shrink the next window to 0
_MAX_WIDENINGS = 8


# ----------------------------------------------------------------------------- the store


class TickStore:
    """Ticks and the events around them, in ClickHouse (server) or chdb (embedded).

    Opening connects and creates the schema if needed (idempotent). Not meant to be shared
    between threads without a lock of the caller's: the actor that owns it serialises calls.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0, query_timeout_s: float = 300):
        self.url = parse_store_url(url)
        self._db = f"`{self.url.database}`"
        self._span_hint = _FIRST_SPAN_NS
        self._trade_ids: dict[str, TradeIds] = {}  # by source: ids for rows without one
        self.duplicates_skipped = 0  # rows insert_ticks did not store again
        self._client: Any = self._connect(connect_timeout_s, query_timeout_s)
        try:
            self._ensure_schema()
        except BaseException:
            self.close()
            raise
        log.info("tick store open: %s (schema v%d)", self.url.redacted, SCHEMA_VERSION)

    def __repr__(self) -> str:
        state = "closed" if self._client is None else "open"
        return f"TickStore({self.url.redacted!r}, {state})"

    # -- lifecycle -----------------------------------------------------------------------

    def _connect(self, connect_timeout_s: float, query_timeout_s: float) -> Any:
        u = self.url
        try:
            if u.scheme == "chdb":
                os.makedirs(u.path, exist_ok=True)
                return clickhouse_connect.get_client(interface="chdb", path=u.path)
            return clickhouse_connect.get_client(
                interface=u.scheme,
                host=u.host,
                port=u.port,
                username=u.user,
                password=u.password,
                connect_timeout=connect_timeout_s,
                send_receive_timeout=query_timeout_s,
                # Without a session id concurrent calls from one store never trip the
                # server's "session is locked" check.
                autogenerate_session_id=False,
            )
        except (ClickHouseError, OSError) as e:
            raise TickStoreError(f"tick store {u.redacted}: open failed: {self._why(e)}") from e

    def _why(self, e: Exception) -> str:
        """The open error, explained when it is chdb's one-directory rule."""
        text = str(e)
        if self.url.scheme != "chdb":
            return text
        if "already initialized with path" in text:
            return (
                "this process already has another chdb data directory open, and chdb hosts one "
                f"per process: close every store on it first ({text})"
            )
        if _locked_by_another_process(self.url.path):
            return (
                "another process has this chdb data directory open, and chdb allows one process "
                "per directory: only the tick-sink actor opens the store, readers ask that actor"
            )
        return text

    def _ensure_schema(self) -> None:
        db = self._db
        if self.url.scheme == "chdb":
            self._command("create database", f"CREATE DATABASE IF NOT EXISTS {db}")
        elif not self._scalar(
            "look up database",
            "SELECT count() FROM system.databases WHERE name = {name:String}",
            {"name": self.url.database},
        ):
            # Only when missing: a production user may read and write without CREATE rights.
            self._command("create database", f"CREATE DATABASE IF NOT EXISTS {db}")
        self._command("create table schema_version", VERSION_TABLE_DDL.format(db=db))
        found = self._scalar("read schema version", f"SELECT max(version) FROM {db}.schema_version")
        if found > SCHEMA_VERSION:
            raise TickStoreError(
                f"tick store {self.url.redacted}: schema v{found} was written by a newer tripwire "
                f"(this one knows v{SCHEMA_VERSION}); upgrade tripwire"
            )
        for table, ddl in TABLE_DDL.items():
            self._command(f"create table {table}", ddl.format(db=db, version=SCHEMA_VERSION))
        if 0 < found < 2:
            self._migrate_v1_repeats()
        if 0 < found < 3:  # v3: the source's time of a headline; old rows read 0 (unknown)
            self._command("v3 migration: news.published_ns",
                          f"ALTER TABLE {db}.news ADD COLUMN IF NOT EXISTS {NEWS_V3_COLUMN}")
        if found < SCHEMA_VERSION:
            self._run(
                "record schema version",
                self._client.insert,
                f"{db}.schema_version",
                [[SCHEMA_VERSION, time.time_ns()]],
                column_names=["version", "applied_ns"],
            )

    def _migrate_v1_repeats(self) -> None:
        """v1 -> v2, once, at open: keep one row per ``(symbol, trade_id)`` of exchange ids.

        v1 stored every insert, so a file ingested twice is there twice. The ticks table is
        rewritten without the repeats (the earliest arrival of each trade is kept) and
        swapped in; rows without an id (-1) are kept as they are, since nothing tells two
        identical id-less trades from one stored twice. A crash part-way leaves the old
        table in place (the version is recorded last), and the next open starts over.
        """
        db = self._db
        cols = ", ".join(TICK_COLUMNS)
        repeats = int(self._scalar(
            "v2 migration: count repeated trades",
            f"SELECT count() - uniqExact(symbol, trade_id) FROM {db}.ticks WHERE trade_id >= 0"))
        self._command("v2 migration: drop a half-built table",
                      f"DROP TABLE IF EXISTS {db}.ticks_v2")
        if repeats == 0:
            return
        log.warning("tick store %s: schema v1 holds %d repeated trades (an ingest done twice); "
                    "rewriting the ticks table with one copy of each", self.url.redacted, repeats)
        t0 = time.monotonic()
        steps = (
            ("create ticks_v2", f"CREATE TABLE {db}.ticks_v2 AS {db}.ticks"),
            ("copy id-less ticks", f"INSERT INTO {db}.ticks_v2 ({cols}) SELECT {cols} "
                                   f"FROM {db}.ticks WHERE trade_id < 0"),
            ("copy one row per trade", f"INSERT INTO {db}.ticks_v2 ({cols}) SELECT {cols} "
                                       f"FROM {db}.ticks WHERE trade_id >= 0 "
                                       "ORDER BY symbol, trade_id, recv_ns, ts "
                                       "LIMIT 1 BY symbol, trade_id"),
            ("swap the tables", f"RENAME TABLE {db}.ticks TO {db}.ticks_v1, "
                                f"{db}.ticks_v2 TO {db}.ticks"),
            ("drop the v1 table", f"DROP TABLE {db}.ticks_v1"),
        )
        for what, sql in steps:
            self._command(f"v2 migration: {what}", sql)
        log.warning("tick store %s: removed %d repeated trades in %.1f s", self.url.redacted,
                    repeats, time.monotonic() - t0)

    def close(self) -> None:
        """Close the client (for chdb: release the engine once no other store uses it)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> TickStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._client is None

    def schema_version(self) -> int:
        """The highest schema version recorded in the store."""
        sql = f"SELECT max(version) FROM {self._db}.schema_version"
        return int(self._scalar("read schema version", sql))

    # -- plumbing ------------------------------------------------------------------------

    def _run(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._client is None:
            raise TickStoreError(f"tick store {self.url.redacted} is closed ({what})")
        try:
            return fn(*args, **kwargs)
        except ClickHouseError as e:
            raise TickStoreError(f"tick store {self.url.redacted}: {what} failed: {e}") from e

    def _command(self, what: str, sql: str) -> None:
        self._run(what, lambda: self._client.command(sql))

    def _rows(self, what: str, sql: str, params: dict | None = None) -> list[tuple]:
        return self._run(what, lambda: self._client.query(sql, parameters=params).result_rows)

    def _scalar(self, what: str, sql: str, params: dict | None = None) -> Any:
        return self._rows(what, sql, params)[0][0]

    def _insert_rows(self, table: str, columns: Sequence[str], rows: list[list]) -> int:
        if rows:
            self._run(
                f"insert into {table}",
                self._client.insert,
                f"{self._db}.{table}",
                rows,
                column_names=list(columns),
            )
        return len(rows)

    # -- ticks ---------------------------------------------------------------------------

    def insert_ticks(self, ticks: TickBatch, symbols: SymbolTable, *, source: str = "") -> int:
        """Store the batch's new trades (one columnar insert); returns the rows written.

        Idempotent: a trade is ``(symbol, trade_id)``, and a trade the store already holds,
        or that an earlier row of the same batch holds, is skipped (counted in
        :attr:`duplicates_skipped`), so ingesting the same trades twice stores one copy.
        Rows without an exchange id (-1) first get the deterministic id of
        :mod:`tripwire.store.trade_ids` (per ``source``). The check reads the stored keys in
        the batch's time range, only when that range overlaps the stored one (appending new
        data costs a look at the table's time range, answered from part metadata), and
        relies on this store being the table's only writer, as the tick-sink actor is.

        A symbol id outside ``symbols`` is a ValueError naming the first such row, and then
        nothing is written.
        """
        if not isinstance(ticks, TickBatch):
            raise TypeError(f"insert_ticks takes a TickBatch, got {type(ticks).__name__}")
        if not isinstance(source, str):
            raise TypeError(f"source must be a string, got {type(source).__name__}")
        if len(ticks) == 0:
            return 0
        names = _names_of(ticks.symbol_id, symbols)
        ids = self._trade_ids.get(source)
        if ids is None:
            ids = self._trade_ids[source] = TradeIds(source)
        ticks = ids.assign(ticks, symbols)
        keep = self._new_trades(ticks, names, symbols)
        if not keep.all():
            self.duplicates_skipped += int(len(keep) - keep.sum())
            rows = np.flatnonzero(keep)
            ticks, names = ticks.take(rows), names[rows]
        n = len(ticks)
        if n == 0:
            return 0
        columns = [
            names,
            ticks.ts_ns,
            ticks.price,
            ticks.qty,
            ticks.side,
            ticks.trade_id,
            ticks.recv_ns,
            [source] * n,
        ]
        self._run(
            "insert into ticks",
            self._client.insert,
            f"{self._db}.ticks",
            columns,
            column_names=list(TICK_COLUMNS),
            column_oriented=True,
        )
        return n

    def _new_trades(self, ticks: TickBatch, names: np.ndarray, symbols: SymbolTable) -> np.ndarray:
        """Per row: True unless its ``(symbol, trade_id)`` is stored or came earlier in it."""
        sid, tid = ticks.symbol_id, ticks.trade_id
        order = np.lexsort((tid, sid))  # stable: the first of equal keys comes first
        keep = np.ones(len(ticks), dtype=bool)
        if len(order) > 1:
            s, t = sid[order], tid[order]
            keep[order[1:][(s[1:] == s[:-1]) & (t[1:] == t[:-1])]] = False
        lo, hi = int(ticks.ts_ns.min()), int(ticks.ts_ns.max())
        first, last, count = self._tick_time_range("insert into ticks: read the time range")
        if count == 0 or lo > last or hi < first:
            return keep  # appending after (or before) everything stored: nothing to match
        present = sorted(set(names.tolist()))
        params = {"names": present, "lo": lo, "hi": hi, **_table_params(symbols)}
        sql = f"""
            SELECT {_SID} AS sid, trade_id FROM {self._db}.ticks
            WHERE symbol IN {{names:Array(String)}} AND ts >= {{lo:Int64}} AND ts <= {{hi:Int64}}"""
        found = self._run("insert into ticks: read the stored trade ids",
                          lambda: self._client.query_np(sql, parameters=params))
        if len(found) == 0:
            return keep
        f_sid = np.asarray(found["sid"], dtype=np.int32)
        f_tid = np.asarray(found["trade_id"], dtype=np.int64)
        for s in np.unique(f_sid).tolist():
            mine = np.flatnonzero(sid == s)
            keep[mine[np.isin(tid[mine], f_tid[f_sid == s])]] = False
        return keep

    def read_ticks(
        self,
        symbols: SymbolTable,
        *,
        names: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        after: Cursor | None = None,
        limit: int = 100_000,
    ) -> tuple[TickBatch, Cursor | None]:
        """One page of ticks in replay order ``(ts, symbol, trade_id)``.

        Returns the page and the cursor of its last row, to pass back as ``after`` for the
        next page; the cursor is None when the page is short (the range is exhausted).
        A page holds at least ``limit`` rows unless it is the last, and more when rows share
        the last row's key (they are never split across pages). Stored symbols that are not
        in ``symbols`` come back with symbol id -1.
        """
        _check_limit(limit)
        where, params = _tick_filter(names, start_ns, end_ns)
        lo = start_ns
        if after is not None:
            where.append(_after_clause(after, params))
            lo = after[0] if lo is None else max(lo, after[0])
        params.update(_table_params(symbols), limit=limit)
        batch, unknown = self._bounded_page(where, params, lo, end_ns, limit)
        if len(batch) < limit:
            return batch, None
        last = len(batch) - 1
        sid = int(batch.symbol_id[last])
        name = symbols.name(sid) if sid >= 0 else str(unknown[last])
        return batch, (int(batch.ts_ns[last]), name, int(batch.trade_id[last]))

    def _bounded_page(
        self, where: list[str], params: dict, lo: int | None, end_ns: int | None, limit: int
    ) -> tuple[TickBatch, np.ndarray]:
        """The page, read from a time window that is just large enough.

        The sort key is (symbol, ts), so a page in time order has to be sorted: unbounded,
        every page would sort all the remaining rows and a replay would cost O(rows^2/page).
        The window [lo, lo + span) starts at ~1.5 pages' worth of time (learnt from the
        previous page) and grows while the page comes back short and rows remain after it.
        """
        first, last, count = self._tick_time_range()
        if count <= 2 * limit:  # a small table: sorting all of it is as cheap as anything
            return self._page(where, params, None)
        lo = first if lo is None else max(lo, first)  # no need to search before the data
        span = self._span_hint
        for _ in range(_MAX_WIDENINGS):
            bound = lo + span
            if bound > last or (end_ns is not None and bound >= end_ns):
                break  # the window would hold the whole rest: read without a bound
            batch, unknown = self._page(where, params, bound)
            if len(batch) >= limit:
                self._span_hint = max(_MIN_SPAN_NS, (int(batch.ts_ns[-1]) - lo) * 3 // 2)
                return batch, unknown
            span *= _growth(len(batch), limit)
        return self._page(where, params, None)

    def _page(self, where: list[str], params: dict, bound: int | None) -> tuple[TickBatch, Any]:
        if bound is not None:
            where, params = [*where, "ts < {bound:Int64}"], {**params, "bound": bound}
        # The inner query picks the page (ties on the key included); the outer one fixes the
        # order of rows that share a key, so a replay is the same bit for bit every time.
        sql = f"""
            SELECT {_TICK_FIELDS}, if(sid < 0, sym, '') AS unknown FROM (
                SELECT {_SID} AS sid, ts, price, qty, side, trade_id, recv_ns, {_SYM} AS sym
                FROM {self._db}.ticks WHERE {" AND ".join(where)}
                ORDER BY ts, sym, trade_id LIMIT {{limit:UInt64}} WITH TIES
            ) ORDER BY ts, sym, trade_id, recv_ns, price, qty, side"""
        return self._tick_page("read ticks", sql, params)

    def _tick_time_range(self, what: str = "read tick time range") -> tuple[int, int, int]:
        """(min ts, max ts, rows) of the whole table, answered from part metadata (cheap)."""
        sql = f"SELECT min(ts), max(ts), count() FROM {self._db}.ticks"
        first, last, count = self._rows(what, sql)[0]
        return int(first), int(last), int(count)

    def _tick_page(self, what: str, sql: str, params: dict) -> tuple[TickBatch, np.ndarray]:
        arr = self._run(what, lambda: self._client.query_np(sql, parameters=params))
        if len(arr) == 0:
            return TickBatch.empty(), np.empty(0, dtype=object)
        cols = {name: np.ascontiguousarray(arr[name]) for name in arr.dtype.names}
        batch = TickBatch(
            symbol_id=cols["sid"].astype(np.int32, copy=False),
            ts_ns=cols["ts"],
            price=cols["price"],
            qty=cols["qty"],
            side=cols["side"],
            trade_id=cols["trade_id"],
            recv_ns=cols["recv_ns"],
        )
        return batch, cols.get("unknown", np.empty(0, dtype=object))

    def replay(
        self,
        symbols: SymbolTable,
        *,
        names: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        chunk_rows: int = 100_000,
    ) -> Iterator[TickBatch]:
        """Every tick in the range, in replay order, as batches of about ``chunk_rows``."""
        after: Cursor | None = None
        while True:
            page, after = self.read_ticks(
                symbols, names=names, start_ns=start_ns, end_ns=end_ns, after=after,
                limit=chunk_rows,
            )
            if len(page):
                yield page
            if after is None:
                return

    def recent(self, symbol: str, symbols: SymbolTable, n: int = 1000) -> TickBatch:
        """The last ``n`` ticks of ``symbol``, oldest first."""
        _check_limit(n, "n")
        params = {"symbol": _check_name(symbol), "n": n, **_table_params(symbols)}
        sql = f"""
            SELECT {_TICK_FIELDS} FROM (
                SELECT {_SID} AS sid, ts, price, qty, side, trade_id, recv_ns
                FROM {self._db}.ticks WHERE symbol = {{symbol:String}}
                ORDER BY ts DESC, trade_id DESC, recv_ns DESC, price DESC, qty DESC, side DESC
                LIMIT {{n:UInt64}}
            ) ORDER BY ts, trade_id, recv_ns, price, qty, side"""
        return self._tick_page("read recent ticks", sql, params)[0]

    def symbol_stats(self, *, start_ns: int | None = None, end_ns: int | None = None) -> list[dict]:
        """Per symbol (sorted by name): ticks, first_ts, last_ts, min/max/last price, volume
        (sum of qty) and vwap (NaN when the volume is 0)."""
        where, params = _tick_filter(None, start_ns, end_ns)
        sql = f"""
            SELECT {_SYM} AS sym, count(), min(ts), max(ts), min(price), max(price),
                   argMax(price, (ts, trade_id)), sum(qty), sum(price * qty) / sum(qty)
            FROM {self._db}.ticks WHERE {" AND ".join(where)}
            GROUP BY sym ORDER BY sym"""
        rows = self._rows("symbol stats", sql, params)
        return [dict(zip(_STATS_KEYS, row, strict=True)) for row in rows]

    def symbols(self) -> list[str]:
        """The distinct symbols in the tick table, sorted."""
        sql = f"SELECT DISTINCT {_SYM} AS sym FROM {self._db}.ticks ORDER BY sym"
        return [row[0] for row in self._rows("list symbols", sql)]

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        sql = " UNION ALL ".join(f"SELECT '{t}', count() FROM {self._db}.{t}" for t in TABLES)
        found = dict(self._rows("count rows", sql))
        return {t: int(found[t]) for t in TABLES}

    # -- anomalies -----------------------------------------------------------------------

    def insert_anomalies(self, items: Sequence[Anomaly]) -> int:
        return self._insert_rows("anomalies", ANOMALY_COLUMNS, [_anomaly_row(a) for a in items])

    def anomalies(
        self,
        *,
        symbol: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
        symbols: SymbolTable | None = None,
    ) -> list[Anomaly]:
        """Anomalies in time order. ``symbols`` remaps ``symbol_id`` to that table (-1 if
        absent); without it the id is the one the writer stored."""
        where, params = _event_filter("ts", "ts", symbol, start_ns, end_ns)
        rows = self._select("anomalies", ANOMALY_COLUMNS, "ts, id", where, params, limit)
        return [_anomaly_from(r, symbols) for r in rows]

    # -- dead letters --------------------------------------------------------------------

    def insert_dead_letters(self, items: Sequence[DeadLetter]) -> int:
        rows = [
            [d.ts_ns, d.source, DeadReason(d.reason).value, d.symbol or "", d.raw, d.detail]
            for d in items
        ]
        return self._insert_rows("dead_letters", DEAD_COLUMNS, rows)

    def dead_letters(
        self,
        *,
        symbol: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        reason: DeadReason | str | None = None,
        limit: int = 1000,
    ) -> list[DeadLetter]:
        """Dead letters in time order (``ts`` is when the input was refused)."""
        where, params = _event_filter("ts", "ts", symbol, start_ns, end_ns)
        if reason is not None:
            where.append("reason = {reason:String}")
            params["reason"] = DeadReason(reason).value
        rows = self._select("dead_letters", DEAD_COLUMNS, "ts, source", where, params, limit)
        return [
            DeadLetter(source, DeadReason(why), raw, ts, sym or None, detail)
            for ts, source, why, sym, raw, detail in rows
        ]

    # -- news ----------------------------------------------------------------------------

    def insert_news(self, items: Sequence[NewsItem]) -> int:
        rows = [[n.id, n.ts_ns, n.headline, list(n.symbols), n.source, n.body,
                 int(n.published_ns)] for n in items]
        return self._insert_rows("news", NEWS_COLUMNS, rows)

    def news(
        self,
        *,
        symbol: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 10_000,
    ) -> list[NewsItem]:
        """News in time order; with ``symbol``, the items that mention it and market-wide ones."""
        where, params = _event_filter("ts", "ts", None, start_ns, end_ns)
        if symbol is not None:
            where.append("(has(symbols, {symbol:String}) OR empty(symbols))")
            params["symbol"] = _check_name(symbol)
        rows = self._select("news", NEWS_COLUMNS, "ts, id", where, params, limit)
        return [NewsItem(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], int(r[6] or 0))
                for r in rows]

    # -- labels --------------------------------------------------------------------------

    def insert_labels(self, items: Sequence[EventLabel]) -> int:
        return self._insert_rows("labels", LABEL_COLUMNS, [_label_row(e) for e in items])

    def labels(
        self,
        *,
        symbol: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 10_000,
    ) -> list[EventLabel]:
        """Labels whose [start_ns, end_ns] overlaps the range, by start time."""
        # A label overlaps [start, end) if it ends at or after start and starts before end.
        where, params = _event_filter("end_ns", "start_ns", symbol, start_ns, end_ns)
        rows = self._select("labels", LABEL_COLUMNS, "start_ns, id", where, params, limit)
        return [
            EventLabel(i, EventKind(kind), sym, start, end, mag, news_id or None)
            for i, kind, sym, start, end, mag, news_id in rows
        ]

    def _select(
        self, table: str, cols: Sequence[str], order: str, where: list, params: dict, limit: int
    ) -> list[tuple]:
        _check_limit(limit)
        sql = (
            f"SELECT {', '.join(cols)} FROM {self._db}.{table} WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT {{limit:UInt64}}"
        )
        return self._rows(f"read {table}", sql, {**params, "limit": limit})


# ----------------------------------------------------------------------------- helpers


def _locked_by_another_process(path: str) -> bool:
    """True if a chdb engine in another process holds ``path`` (it flocks ``status``)."""
    try:
        fd = os.open(os.path.join(path, "status"), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if we took it
    return False


def _names_of(symbol_id: np.ndarray, symbols: SymbolTable) -> np.ndarray:
    """Symbol names per row, as an object array; a ValueError names the first bad row."""
    bad = np.flatnonzero((symbol_id < 0) | (symbol_id >= len(symbols)))
    if len(bad):
        row = int(bad[0])
        raise ValueError(
            f"insert_ticks: row {row} has symbol id {int(symbol_id[row])}, not in the symbol "
            f"table of {len(symbols)} ({len(bad)} bad rows); nothing was written"
        )
    return np.array(symbols.names, dtype=object)[symbol_id]


def _table_params(symbols: SymbolTable) -> dict:
    names = list(symbols.names)
    return {"table_names": names, "table_ids": list(range(len(names)))}


def _tick_filter(
    names: Sequence[str] | None, start_ns: int | None, end_ns: int | None
) -> tuple[list[str], dict]:
    where, params = _event_filter("ts", "ts", None, start_ns, end_ns)
    if names is not None:
        if isinstance(names, str):
            raise TypeError(f"names must be a sequence of symbol names, not the string {names!r}")
        where.append("symbol IN {names:Array(String)}")
        params["names"] = [_check_name(n) for n in names]
    return where, params


def _event_filter(
    lo_col: str, hi_col: str, symbol: str | None, start_ns: int | None, end_ns: int | None
) -> tuple[list[str], dict]:
    """``symbol = ?``, ``lo_col >= start_ns`` and ``hi_col < end_ns``, each when given."""
    where: list[str] = ["1"]
    params: dict[str, Any] = {}
    if symbol is not None:
        where.append("symbol = {symbol:String}")
        params["symbol"] = _check_name(symbol)
    if start_ns is not None:
        where.append(f"{lo_col} >= {{start_ns:Int64}}")
        params["start_ns"] = _check_ns(start_ns, "start_ns")
    if end_ns is not None:
        where.append(f"{hi_col} < {{end_ns:Int64}}")
        params["end_ns"] = _check_ns(end_ns, "end_ns")
    return where, params


def _after_clause(after: Cursor, params: dict) -> str:
    """Rows strictly after ``after`` in replay order; ``ts >=`` first so the index prunes."""
    if not (isinstance(after, tuple | list) and len(after) == 3):
        raise ValueError(f"after must be a (ts, symbol, trade_id) cursor, got {after!r}")
    ts, name, trade_id = after
    params.update(
        after_ts=_check_ns(ts, "after[0] (ts)"),
        after_sym=_check_name(name, allow_empty=True),
        after_tid=_check_ns(trade_id, "after[2] (trade_id)"),
    )
    return (
        "ts >= {after_ts:Int64} AND (ts > {after_ts:Int64} OR "
        f"{_SYM} > {{after_sym:String}} OR "
        f"({_SYM} = {{after_sym:String}} AND trade_id > {{after_tid:Int64}}))"
    )


def _growth(rows: int, limit: int) -> int:
    """How much to widen a page's window that held ``rows`` of ``limit``: to ~1.5 pages at
    the density seen, x2 at least; an empty window says nothing about density, so x1024."""
    if rows == 0:
        return 1024
    return min(1024, max(2, math.ceil(1.5 * limit / rows)))


def _check_ns(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{what} must be an int (ns), got {value!r}")
    if not _INT64_MIN <= int(value) <= _INT64_MAX:
        raise ValueError(f"{what} is outside int64: {value!r}")
    return int(value)


def _check_limit(limit: object, what: str = "limit") -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{what} must be an int >= 1, got {limit!r}")


def _check_name(name: object, *, allow_empty: bool = False) -> str:
    if not isinstance(name, str) or not (name or allow_empty):
        raise ValueError(f"symbol name must be a non-empty string, got {name!r}")
    return name


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"window stats hold a {type(value).__name__}, which JSON cannot store")


def _anomaly_row(a: Anomaly) -> list:
    snap = a.snapshot
    return [
        a.id, a.symbol or "", a.symbol_id, a.ts_ns, Metric(a.metric).name.lower(), a.z,
        a.window_mean, a.window_std, a.value, a.row, a.price, a.qty, a.trade_id, a.recv_ns,
        a.detected_ns, a.source, snap is not None,
        [] if snap is None else np.asarray(snap.ts_ns, dtype=np.int64).tolist(),
        [] if snap is None else np.asarray(snap.price, dtype=np.float64).tolist(),
        [] if snap is None else np.asarray(snap.qty, dtype=np.float64).tolist(),
        "" if a.window is None else json.dumps(a.window, default=_json_default),
    ]


def _label_row(e: EventLabel) -> list:
    kind = EventKind(e.kind).value
    return [e.id, kind, e.symbol, e.start_ns, e.end_ns, e.magnitude, e.news_id or ""]


def _anomaly_from(row: tuple, symbols: SymbolTable | None) -> Anomaly:
    (id_, sym, sid, ts, metric, z, mean, std, value, batch_row, price, qty, trade_id, recv_ns,
     detected_ns, source, has_snap, snap_ts, snap_price, snap_qty, window) = row
    if symbols is not None:
        sid = symbols.id(sym) if sym in symbols else -1
    snapshot = None
    if has_snap:
        snapshot = RecentTicks(
            np.asarray(snap_ts, dtype=np.int64),
            np.asarray(snap_price, dtype=np.float64),
            np.asarray(snap_qty, dtype=np.float64),
        )
    return Anomaly(
        symbol_id=int(sid), ts_ns=ts, metric=Metric[metric.upper()], z=z, window_mean=mean,
        window_std=std, value=value, row=batch_row, symbol=sym or None, id=id_, price=price,
        qty=qty, trade_id=trade_id, recv_ns=recv_ns, detected_ns=detected_ns, source=source,
        snapshot=snapshot, window=json.loads(window) if window else None,
    )
