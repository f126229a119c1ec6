"""DetectorShard: one native DetectorBank for a stable subset of the symbols.

Symbols go to shards by a stable hash of their name (:func:`shard_of`), so a symbol lands on
the same shard in every run and on every machine, whatever the symbol table's order. The
shard maps the pipeline's global symbol ids to its bank's dense local ids, pushes each
batch through the bank, and turns trips into :class:`~tripwire.model.Anomaly` events that
carry the frozen snapshot: the symbol's last ticks up to and including the tripping one,
the trip's own z and window stats, and every metric's window as of the end of the batch.

The class is plain Python (tested without Ray); the pipeline hosts it as a Ray actor with
``num_cpus=0``. Its state checkpoints through the bank's pickle support.
"""

from __future__ import annotations

import pickle
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.runtime import process_rss_mb
from tripwire.detect import DetectorBank, DetectorConfig
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


@dataclass(frozen=True, slots=True)
class ShardResult:
    """What one batch produced on one shard. Trip symbol ids are global."""

    shard: int
    ticks: int
    trips: Trips
    anomalies: list[Anomaly] = field(default_factory=list)
    rejected: int = 0  # ticks the bank refused (upstream validation should leave none)
    processed_ns: int = 0  # wall time when the batch was done


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
        self.bank = DetectorBank(config or DetectorConfig(), n_symbols=max(1, len(owned)))
        self._ticks = 0
        self._batches = 0
        self._rejected = 0
        self._anomalies = 0

    @property
    def owned(self) -> tuple[str, ...]:
        return tuple(self.symbols.name(int(g)) for g in self._local_to_global)

    def process(self, ticks: TickBatch, source: str = "") -> ShardResult:
        """Score a batch of this shard's ticks; trips come back as events with snapshots."""
        local = self._localise(ticks.symbol_id)
        before = self._rings_of_busy_symbols(local)
        res = self.bank.push_batch(local, ticks.ts_ns, ticks.price, ticks.qty)
        self._ticks += len(ticks) - len(res.rejected)
        self._batches += 1
        self._rejected += len(res.rejected)
        trips = res.trips
        glob = Trips(
            row=trips.row, ts_ns=trips.ts_ns, symbol_id=self._local_to_global[trips.symbol_id],
            metric=trips.metric, z=trips.z, mean=trips.mean, std=trips.std, value=trips.value,
        )
        anomalies = self._anomalies_of(glob, ticks, local, res.rejected.row, source, before)
        self._anomalies += len(anomalies)
        return ShardResult(
            self.index, len(ticks), glob, anomalies, len(res.rejected), self.clock.now_ns()
        )

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
        the batch must be copied first. Symbols with at most a quarter of the ring in the
        batch keep at least three quarters of it, and are not copied (copies cost ~µs each).
        """
        if not len(local):
            return {}
        counts = np.bincount(local, minlength=self.bank.n_symbols)
        busy = np.flatnonzero(counts > self.bank.config.snapshot_len // 4)
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
                windows[lsid] = {"as_of": "end_of_batch", **self.bank.window_stats(lsid)}
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
        n_keep = self.bank.config.snapshot_len
        mine = np.flatnonzero((local == lsid) & accepted)
        upto = mine[mine <= row]
        if before is None:
            ring = self.bank.snapshot(lsid)
            k = max(0, len(ring) - len(mine))
            before = RecentTicks(ring.ts_ns[:k], ring.price[:k], ring.qty[:k])
        head = before.ts_ns, before.price, before.qty
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
            "bank": self.bank.counters(),
            "bank_bytes": self.bank.bytes_per_symbol * self.bank.n_symbols,
        }

    def checkpoint(self) -> bytes:
        """The shard's full detector state; :meth:`restore` on a fresh shard resumes it."""
        return pickle.dumps(
            {"index": self.index, "n_shards": self.n_shards, "names": self.symbols.names,
             "bank": self.bank, "counts": (self._ticks, self._batches, self._rejected,
                                           self._anomalies)},
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

    def memory(self) -> dict[str, float]:
        """This process's resident memory, MiB (the shard runs in its own worker)."""
        return process_rss_mb()

    def ping(self) -> int:
        """Heartbeat: the shard's clock, proving the actor is alive and responsive."""
        return self.clock.now_ns()
