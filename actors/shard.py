"""DetectorShard: one native DetectorBank for a stable subset of the symbols.

Symbols go to shards by a stable hash of their name (:func:`shard_of`), so a symbol lands on
the same shard in every run and on every machine, whatever the symbol table's order. The
shard maps the pipeline's global symbol ids to its bank's dense local ids, pushes each
batch through the bank, and turns trips into :class:`~tripwire.model.Anomaly` events that
carry the frozen snapshot: the symbol's last ticks up to and including the tripping one,
the trip's own z and window stats, and every metric's window as of the end of the trip's
volume bucket within the batch (``as_of: end_of_bucket``; a batch spanning several volume
buckets is scored bucket by bucket, so the volume window an incident reads is the one at
its trip, whatever the batching: backtest and live agree).

The class is plain Python (tested without Ray); the pipeline hosts it as a Ray actor with
``num_cpus=0``. Its state checkpoints through the bank's pickle support.

Restarts: the data plane hosts it with ``max_restarts`` so Ray re-creates a killed shard by
re-running ``__init__`` -- with an empty bank. A shard that knows it is such a restarted
incarnation (Ray's ``was_current_actor_reconstructed``) refuses to score
(:class:`ShardNotRestored`) until its owner hands it the last checkpoint through
:meth:`DetectorShard.restore` (or :meth:`DetectorShard.start_empty` when there is none), so no
tick is ever scored against a bank that silently forgot its windows. ``process`` takes the
batch's sequence number: a batch already applied (a retry) is answered empty and counted,
never applied twice.
"""

from __future__ import annotations

import dataclasses
import itertools
import pickle
import random
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.runtime import process_rss_mb
from tripwire.detect import DetectorBank, DetectorConfig
from tripwire.detect.transform import from_scored, to_scored
from tripwire.model import (
    Anomaly,
    Clock,
    Metric,
    RecentTicks,
    SymbolTable,
    SystemClock,
    TickBatch,
    Trips,
    new_id,
)

# The price-level threshold of a probability symbol: never reached (the bank wants a finite
# threshold; a z-score of odds levels is meaningless, a level jump shows as a log-odds move).
PRICE_LEVEL_OFF = 1e300


def shard_of(symbol: str, n_shards: int) -> int:
    """The shard that owns ``symbol``: CRC-32 of its name, modulo the shard count.

    >>> shard_of("BTCUSDT", 4) == shard_of("BTCUSDT", 4), 0 <= shard_of("ETHUSDT", 3) < 3
    (True, True)
    """
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    return zlib.crc32(symbol.encode()) % n_shards


def routing_table(symbols: SymbolTable, n_shards: int) -> np.ndarray:
    """Global symbol id -> shard index, as an int32 array for vectorised routing."""
    return np.array([shard_of(n, n_shards) for n in symbols.names], dtype=np.int32)


class ShardNotRestored(RuntimeError):
    """A restarted shard asked to score before its owner restored its checkpoint."""


def _reconstructed() -> bool:
    """True inside a Ray actor that Ray has restarted (False outside Ray, or on any doubt
    about the API: a plain shard, as in the tests, is never waiting for a restore)."""
    try:
        import warnings

        import ray

        if not ray.is_initialized():
            return False
        with warnings.catch_warnings():  # Ray's own property uses a deprecated accessor
            warnings.simplefilter("ignore", DeprecationWarning)
            return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:
        return False


@dataclass(frozen=True, slots=True)
class ShardResult:
    """What one batch produced on one shard. Trip symbol ids are global."""

    shard: int
    ticks: int
    trips: Trips
    anomalies: list[Anomaly] = field(default_factory=list)
    rejected: int = 0  # ticks the bank refused (upstream validation should leave none)
    processed_ns: int = 0  # wall time when the batch was done
    duplicate: bool = False  # the batch's sequence number was applied already: nothing done
    checkpoint: bytes | None = None  # the state right after this batch, when asked for


class DetectorShard:
    """Detectors for the symbols with ``shard_of(name, n_shards) == index``."""

    def __init__(
        self,
        index: int,
        n_shards: int,
        symbols: SymbolTable,
        config: DetectorConfig | dict | None = None,
        *,
        clock: Clock | None = None,
        id_seed: int | None = None,
        probability_symbols: Iterable[str] = (),
    ) -> None:
        if not 0 <= index < n_shards:
            raise ValueError(f"shard index {index} is outside [0, {n_shards})")
        if isinstance(config, dict):
            config = DetectorConfig.from_dict(config)
        self.index, self.n_shards = index, n_shards
        self.symbols = symbols
        self.clock = clock or SystemClock()
        # Seeded ids make a run on simulated time reproducible; None draws from the OS.
        self._rng = random.Random(id_seed) if id_seed is not None else None
        owned = np.flatnonzero(routing_table(symbols, n_shards) == index).astype(np.int32)
        self._local_to_global = owned
        self._global_to_local = np.full(len(symbols), -1, dtype=np.int32)
        self._global_to_local[owned] = np.arange(len(owned), dtype=np.int32)
        config = config or DetectorConfig()
        # A snapshot is the last snapshot_len ticks up to the trip, whatever the batching:
        # the bank's ring keeps a quarter more, so a symbol with at most that many ticks in
        # a batch still has a full snapshot's history before its trip after the push (the
        # busier ones are copied before it: _rings_of_busy_symbols).
        self.snapshot_len = config.snapshot_len
        ring = dataclasses.replace(config, snapshot_len=config.snapshot_len
                                   + max(1, config.snapshot_len // 4))
        self.bank = DetectorBank(ring, n_symbols=max(1, len(owned)))
        self.bank.apply_symbol_thresholds(self.owned)  # per-symbol calibration, if any
        # Prices that are probabilities (prediction markets, from the instrument provider)
        # are scored as log-odds changes, their level metric off: tripwire.detect.transform.
        wanted = set(probability_symbols)
        self._probability = np.array([n in wanted for n in self.owned] or [False], dtype=bool)
        for lsid in np.flatnonzero(self._probability):
            ret, vol, _ = self.bank.thresholds(int(lsid))
            self.bank.set_thresholds(int(lsid), (ret, vol, PRICE_LEVEL_OFF))
        self._ticks = 0
        self._batches = 0
        self._rejected = 0
        self._anomalies = 0
        self._seq = -1  # the last batch sequence number applied (-1: none)
        self._duplicates = 0
        # A Ray restart re-ran __init__: the bank is empty, the owner must restore it first.
        self.awaiting_restore = _reconstructed()

    @property
    def owned(self) -> tuple[str, ...]:
        return tuple(self.symbols.name(int(g)) for g in self._local_to_global)

    def process(self, ticks: TickBatch, source: str = "", seq: int | None = None,
                checkpoint: bool = False) -> ShardResult:
        """Score a batch of this shard's ticks; trips come back as events with snapshots.

        ``seq``: the batch's sequence number (rising per shard); one at or below the last
        applied is a retry and is answered empty (``duplicate``). ``checkpoint``: return the
        state after this batch too (one round trip instead of two)."""
        if self.awaiting_restore:
            raise ShardNotRestored(f"shard {self.index} was restarted and has not been "
                                   "restored from its checkpoint; nothing scored")
        if seq is not None and seq <= self._seq:
            self._duplicates += 1
            return ShardResult(self.index, 0, Trips.concat([]), [], 0, self.clock.now_ns(),
                               duplicate=True)
        local = self._localise(ticks.symbol_id)
        pieces = self._volume_bucket_pieces(ticks.ts_ns)
        if pieces is None:
            glob, anomalies, rejected = self._score(ticks, local, source)
        else:  # each volume bucket's rows on their own; rows mapped back to the batch's
            parts = [self._score(ticks.take(rows), local[rows], source, rows)
                     for rows in pieces]
            glob = Trips.concat([p[0] for p in parts])
            anomalies = [a for p in parts for a in p[1]]
            rejected = sum(p[2] for p in parts)
        self._batches += 1
        self._anomalies += len(anomalies)
        if seq is not None:
            self._seq = seq
        return ShardResult(
            self.index, len(ticks), glob, anomalies, rejected, self.clock.now_ns(),
            checkpoint=self.checkpoint() if checkpoint else None,
        )

    def _volume_bucket_pieces(self, ts_ns: np.ndarray) -> list[np.ndarray | slice] | None:
        """The batch's rows by volume bucket (absolute time, as the bank aligns them), or
        None when it holds one bucket (nearly always live). A trip's volume window (which
        the incident's ``volume_vs_window`` reads) changes only when a bucket closes; scored
        bucket by bucket, the window taken after the trip's piece is the window at the trip,
        however the stream was cut into batches (a backtest's 5 s batches, a live feed's)."""
        b = self.bank.config.volume_bucket_ns
        if b <= 0 or len(ts_ns) < 2:
            return None
        k = ts_ns // b
        if k.min() == k.max():
            return None
        if bool(np.all(k[1:] >= k[:-1])):  # in time order (a replay, most feeds): slices
            edges = [0, *(np.flatnonzero(np.diff(k)) + 1).tolist(), len(k)]
            return [slice(lo, hi) for lo, hi in itertools.pairwise(edges)]
        order = np.argsort(k, kind="stable")  # keeps each symbol's order (ordered per symbol)
        cuts = np.flatnonzero(np.diff(k[order])) + 1
        return np.split(order, cuts)

    def _score(self, ticks: TickBatch, local: np.ndarray, source: str,
               rows: np.ndarray | slice | None = None) -> tuple[Trips, list[Anomaly], int]:
        """Push ``ticks`` through the bank: (trips, anomalies, rejected). ``rows``: their
        row numbers in the whole batch (the trips' and anomalies' rows are given as those)."""
        before = self._rings_of_busy_symbols(local)
        scored = to_scored(ticks.price, self._probability[local])
        res = self.bank.push_batch(local, ticks.ts_ns, scored, ticks.qty)
        self._ticks += len(ticks) - len(res.rejected)
        self._rejected += len(res.rejected)
        trips = res.trips
        glob = Trips(
            row=trips.row, ts_ns=trips.ts_ns, symbol_id=self._local_to_global[trips.symbol_id],
            metric=trips.metric, z=trips.z, mean=trips.mean, std=trips.std, value=trips.value,
        )
        anomalies = self._anomalies_of(glob, ticks, local, res.rejected.row, source, before)
        if isinstance(rows, slice):
            rows = np.arange(rows.start, rows.stop) if len(glob) else None
        if rows is not None and len(glob):
            glob = dataclasses.replace(glob, row=rows[glob.row].astype(glob.row.dtype))
            anomalies = [dataclasses.replace(a, row=int(rows[a.row])) for a in anomalies]
        return glob, anomalies, len(res.rejected)

    def _localise(self, symbol_id: np.ndarray) -> np.ndarray:
        if len(symbol_id) and (symbol_id.min() < 0 or symbol_id.max() >= len(self.symbols)):
            raise ValueError(
                f"shard {self.index}: symbol id out of range [0, {len(self.symbols)})"
            )
        local = self._global_to_local[symbol_id]
        if len(local) and local.min() < 0:
            row = int(np.flatnonzero(local < 0)[0])
            name = self.symbols.name(int(symbol_id[row]))
            raise ValueError(f"shard {self.index} got {name!r} (row {row}), owned by another shard")
        return local

    def _rings_of_busy_symbols(self, local: np.ndarray) -> dict[int, RecentTicks]:
        """The snapshot rings, before the push, of symbols with many ticks in this batch.

        A trip's snapshot is the ring before the batch plus the batch's ticks up to the trip.
        The ring after the push has lost as many old ticks as the batch added, so for a
        busy symbol (a cascade puts thousands of its trades in one batch) the history before
        the batch must be copied first. Symbols with at most the ring's headroom (its length
        beyond a snapshot) in the batch keep a whole snapshot's worth of older ticks, and are
        not copied (copies cost ~7 µs each). A bank restored from a checkpoint without
        headroom copies every symbol of the batch (exact, slower).
        """
        if not len(local):
            return {}
        counts = np.bincount(local, minlength=self.bank.n_symbols)
        headroom = max(0, self.bank.config.snapshot_len - self.snapshot_len)
        busy = np.flatnonzero(counts > headroom)
        return {int(s): self.bank.snapshot(int(s)) for s in busy}

    def _anomalies_of(self, trips, ticks, local, rejected_rows, source, before) -> list[Anomaly]:
        if len(trips) == 0:
            return []
        now = self.clock.now_ns()
        accepted = np.ones(len(ticks), dtype=bool)
        accepted[rejected_rows] = False
        snapshots: dict[int, RecentTicks] = {}
        windows: dict[int, dict] = {}
        out = []
        for i in range(len(trips)):
            row, gsid = int(trips.row[i]), int(trips.symbol_id[i])
            lsid = int(self._global_to_local[gsid])
            if row not in snapshots:  # several metrics can trip on one tick
                snapshots[row] = self._snapshot_at(
                    lsid, row, ticks, local, accepted, before.get(lsid)
                )
            if lsid not in windows:
                windows[lsid] = {"as_of": "end_of_bucket", **self.bank.window_stats(lsid)}
            out.append(
                Anomaly(
                    symbol_id=gsid, symbol=self.symbols.name(gsid), ts_ns=int(trips.ts_ns[i]),
                    metric=Metric(int(trips.metric[i])), z=float(trips.z[i]),
                    window_mean=float(trips.mean[i]), window_std=float(trips.std[i]),
                    value=float(trips.value[i]), row=row, id=new_id(self.clock, self._rng),
                    price=float(ticks.price[row]), qty=float(ticks.qty[row]),
                    trade_id=int(ticks.trade_id[row]), recv_ns=int(ticks.recv_ns[row]),
                    detected_ns=now, source=source, snapshot=snapshots[row],
                    window=windows[lsid],
                )
            )
        return out

    def _snapshot_at(self, lsid, row, ticks, local, accepted, before) -> RecentTicks:
        """The symbol's last ``snapshot_len`` ticks up to and including ``row``: the ring as
        it was before the batch, then the batch's accepted ticks of the symbol up to ``row``.

        ``before`` is that ring when it was copied ahead of the push (busy symbols);
        otherwise it is what remains of it in the ring after the push (the entries older
        than the batch's ticks).
        """
        n_keep = self.snapshot_len
        mine = np.flatnonzero((local == lsid) & accepted)
        upto = mine[mine <= row]
        if before is None:
            ring = self.bank.snapshot(lsid)
            k = max(0, len(ring) - len(mine))
            before = RecentTicks(ring.ts_ns[:k], ring.price[:k], ring.qty[:k])
        ring_price = before.price
        if self._probability[lsid]:  # the ring holds odds: the analyst sees probabilities
            ring_price = from_scored(ring_price, np.ones(len(ring_price), dtype=bool))
        head = before.ts_ns, ring_price, before.qty
        ts = np.concatenate([head[0], ticks.ts_ns[upto]])[-n_keep:]
        price = np.concatenate([head[1], ticks.price[upto]])[-n_keep:]
        qty = np.concatenate([head[2], ticks.qty[upto]])[-n_keep:]
        return RecentTicks(ts, price, qty)

    # -- lifecycle ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "shard": self.index,
            "symbols": len(self._local_to_global),
            "ticks": self._ticks,
            "batches": self._batches,
            "rejected": self._rejected,
            "anomalies": self._anomalies,
            "seq": self._seq,
            "duplicates": self._duplicates,
            "awaiting_restore": self.awaiting_restore,
            "bank": self.bank.counters(),
            "bank_bytes": self.bank.bytes_per_symbol * self.bank.n_symbols,
        }

    def checkpoint(self) -> bytes:
        """The shard's full detector state; :meth:`restore` on a fresh shard resumes it."""
        return pickle.dumps(
            {"index": self.index, "n_shards": self.n_shards, "names": self.symbols.names,
             "bank": self.bank, "seq": self._seq,
             "counts": (self._ticks, self._batches, self._rejected, self._anomalies)},
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    def restore(self, blob: bytes) -> None:
        state = pickle.loads(blob)
        if (state["index"], state["n_shards"], tuple(state["names"])) != (
            self.index, self.n_shards, self.symbols.names
        ):
            raise ValueError(
                f"checkpoint is for shard {state['index']}/{state['n_shards']} over "
                f"{len(state['names'])} symbols, not shard {self.index}/{self.n_shards} "
                f"over {len(self.symbols)}"
            )
        self.bank = state["bank"]
        self._ticks, self._batches, self._rejected, self._anomalies = state["counts"]
        self._seq = state.get("seq", -1)
        self.awaiting_restore = False

    def start_empty(self) -> None:
        """A restarted shard with no checkpoint to restore: start from an empty bank, on
        purpose (its owner records that the windows were lost)."""
        self.awaiting_restore = False

    def recover(self, blob: bytes | None) -> bool:
        """Restore ``blob`` (None: start empty) only if this incarnation awaits a restore;
        False (nothing changed) otherwise. Check and restore are one actor call, so two
        owners' tasks noticing the same restart cannot roll a live shard back twice."""
        if not self.awaiting_restore:
            return False
        if blob is None:
            self.start_empty()
        else:
            self.restore(blob)
        return True

    def memory(self) -> dict[str, float]:
        """This process's resident memory, MiB (the shard runs in its own worker)."""
        return process_rss_mb()

    def ping(self) -> int:
        """Heartbeat: the shard's clock, proving the actor is alive and responsive."""
        return self.clock.now_ns()

    def waiting_for_restore(self) -> bool:
        """Heartbeat with state: True when this is a restarted incarnation not yet restored."""
        return self.awaiting_restore
