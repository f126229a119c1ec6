"""DetectorBank: the per-symbol detectors of one shard, over columnar batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tripwire._native_loader import load
from tripwire.detect.config import DetectorConfig
from tripwire.model import RecentTicks, Rejections, TickBatch, Trips

_native = load()


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one push_batch produced: the trips, and the rows refused with their reasons."""

    trips: Trips
    rejected: Rejections


class DetectorBank:
    """Exact rolling z-score detectors (return, volume, price) for ``n_symbols`` symbols.

    Symbol ids are dense ints in ``[0, n_symbols)`` (see :class:`tripwire.model.SymbolTable`).
    All memory is allocated here; :meth:`push_batch` runs in C++ without the GIL and without
    a Python object per tick. A bank is not safe for concurrent use from several threads:
    give each its own bank, or serialise calls (a Ray actor does, unless it is threaded).

    >>> import numpy as np
    >>> from tripwire.detect import DetectorBank, DetectorConfig, MetricConfig
    >>> cfg = DetectorConfig(price=MetricConfig(window=5, threshold=3.0), cooldown_ns=0)
    >>> bank = DetectorBank(cfg, n_symbols=1)
    >>> price = np.array([100.0, 100.1, 99.9, 100.0, 100.1, 100.0, 130.0])
    >>> n = len(price)
    >>> res = bank.push_batch(np.zeros(n, np.int32), np.arange(n, dtype=np.int64), price,
    ...                       np.ones(n))
    >>> [int(r) for r in res.trips.row], [round(float(z), 1) for z in res.trips.z]
    ([6], [358.3])
    """

    def __init__(self, config: DetectorConfig | None = None, n_symbols: int = 1) -> None:
        if isinstance(n_symbols, bool) or not isinstance(n_symbols, int) or not (
            1 <= n_symbols <= 10_000_000
        ):
            raise ValueError(f"n_symbols must be an integer in [1, 10000000], got {n_symbols!r}")
        self.config = config or DetectorConfig()
        self._native = self._build(self.config, n_symbols)

    @staticmethod
    def _build(cfg: DetectorConfig, n_symbols: int) -> Any:
        ms = cfg.metrics
        return _native.DetectorBank(
            n_symbols,
            [m.window for m in ms],
            [m.effective_min_periods for m in ms],
            [float(m.threshold) for m in ms],
            [m.two_sided for m in ms],
            [m.enabled for m in ms],
            cfg.ddof,
            cfg.volume_bucket_ns,
            cfg.cooldown_ns,
            cfg.snapshot_len,
            cfg.return_bucket_ns,
            cfg.volume_statistic_code,
            cfg.min_bucket_trades,
            float(cfg.return_activity_exponent),
            cfg.effective_drift_buckets,
            float(cfg.drift_threshold),
            cfg.effective_rate_p,
            cfg.rate_window,
            cfg.rate_min_trades,
        )

    @property
    def n_symbols(self) -> int:
        return self._native.n_symbols

    @property
    def bytes_per_symbol(self) -> int:
        """Memory held per symbol: state, the three rings and the snapshot ring."""
        return self._native.bytes_per_symbol

    def push_batch(
        self,
        symbol_ids: np.ndarray,
        ts_ns: np.ndarray,
        price: np.ndarray,
        qty: np.ndarray,
        *,
        strict: bool = False,
    ) -> BatchResult:
        """Score and absorb a batch (int32 ids, int64 ns, float64 price and qty).

        Structural errors (wrong dtype, lengths, symbol id out of range) raise before any
        state changes. Bad values (NaN/inf/<=0 price, NaN/inf/negative qty, a tick older
        than its symbol's last) are refused and returned in ``rejected``; with
        ``strict=True`` the first one raises ValueError and nothing is applied.
        """
        d = self._native.push_batch(symbol_ids, ts_ns, price, qty, strict)
        trips = Trips(
            row=d["row"], ts_ns=d["ts_ns"], symbol_id=d["symbol_id"], metric=d["metric"],
            z=d["z"], mean=d["mean"], std=d["std"], value=d["value"],
        )
        return BatchResult(trips, Rejections(row=d["rejected_row"], reason=d["rejected_reason"]))

    def push(self, batch: TickBatch, *, strict: bool = False) -> BatchResult:
        return self.push_batch(batch.symbol_id, batch.ts_ns, batch.price, batch.qty, strict=strict)

    def snapshot(self, symbol_id: int) -> RecentTicks:
        ts, price, qty = self._native.snapshot(symbol_id)
        return RecentTicks(ts, price, qty)

    def window_stats(self, symbol_id: int) -> dict[str, dict[str, Any]]:
        """Current window count/mean/std per metric, and the symbol's counters. The volume
        window says what it holds (``statistic``: ``sum`` is quantity per bucket; the
        ``log_*`` statistics hold logs, so their mean is a log, not a bucket's size)."""
        stats = self._native.window_stats(symbol_id)
        if "volume" in stats:
            stats["volume"]["statistic"] = (self.config.volume_statistic
                                            if self.config.volume_bucket_ns > 0 else "trade")
        return stats

    def counters(self) -> dict[str, Any]:
        """Accepted ticks, rejections by reason, reported and suppressed trips, and volume
        crossings gated by the minimum-activity rule (``gated``)."""
        return self._native.counters()

    def set_thresholds(self, symbol_id: int, thresholds: tuple[float, float, float]) -> None:
        """One symbol's (returns, volume, price) thresholds, e.g. from a calibration."""
        self._native.set_thresholds(symbol_id, [float(t) for t in thresholds])

    def thresholds(self, symbol_id: int) -> tuple[float, float, float]:
        return tuple(self._native.thresholds(symbol_id))

    def apply_symbol_thresholds(self, names: Sequence[str]) -> int:
        """Give each symbol (``names[i]`` is id i) its ``config.symbols`` thresholds.

        Returns how many symbols had one; names the config has but the bank does not are
        simply not here (another shard holds them)."""
        if len(names) > self.n_symbols:
            raise ValueError(f"{len(names)} names for a bank of {self.n_symbols} symbols")
        hit = 0
        for i, name in enumerate(names):
            th = self.config.symbols.get(name)
            if th is not None:
                self.set_thresholds(i, th)
                hit += 1
        return hit

    def reset_symbol(self, symbol_id: int) -> None:
        """Forget a symbol's windows (e.g. after an exchange outage); counters are kept."""
        self._native.reset_symbol(symbol_id)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "native": self._native}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = DetectorConfig.from_dict(state["config"])
        self._native = state["native"]

    def __repr__(self) -> str:
        return f"DetectorBank(n_symbols={self.n_symbols}, config={self.config!r})"
