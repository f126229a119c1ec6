"""The tick store's insert path: ticks/s of ``TickStore.insert_ticks`` on chdb.

Run from the project root::

    python -m benchmarks.tick_store            # JSON line of figures
    python -m benchmarks.tick_store --quick    # smaller sizes

Figures (JSON keys), each the median of ``repeats`` runs on a fresh store in a temporary
directory, 100 symbols, batches of ``batch_rows`` (the sink's flush size):

  insert_ticks_per_s      new ticks appended in time order (the live and ingest case)
  reinsert_ticks_per_s    the same ticks inserted again (a double ingest: all duplicates)
  rows_after_reinsert     rows the table holds after both passes (= ticks when deduplicated)
  *_per_cpu_s             the same per second of this process's CPU time (chdb runs in
                          process): steadier than wall time on a machine shared with others

``--module-file`` times another version of ``tripwire/store/ticks.py`` (e.g. the previous
commit's, from ``git show HEAD~1:tripwire/store/ticks.py > /tmp/old_ticks.py``) for a
before/after comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time

import numpy as np

from tripwire.model import SymbolTable, TickBatch


def _store_class(module_file: str | None):
    if module_file is None:
        from tripwire.store.ticks import TickStore

        return TickStore
    spec = importlib.util.spec_from_file_location("ticks_under_test", module_file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod.TickStore


def _batches(n_batches: int, rows: int, n_symbols: int, seed: int = 7) -> list[TickBatch]:
    rng = np.random.default_rng(seed)
    out, t0, tid = [], 1_700_000_000 * 10**9, np.zeros(n_symbols, dtype=np.int64)
    for b in range(n_batches):
        sid = rng.integers(0, n_symbols, rows).astype(np.int32)
        ts = t0 + (b * rows + np.arange(rows)) * 1_000_000  # 1 ms apart, in time order
        trade_id = np.empty(rows, dtype=np.int64)
        for s in range(n_symbols):  # consecutive exchange ids per symbol
            mine = np.flatnonzero(sid == s)
            trade_id[mine] = tid[s] + np.arange(len(mine))
            tid[s] += len(mine)
        out.append(TickBatch.from_columns(sid, ts, 100 + rng.random(rows), rng.random(rows),
                                          side=rng.choice([-1, 1], rows), trade_id=trade_id,
                                          recv_ns=ts + 5))
    return out


def run(quick: bool, module_file: str | None, repeats: int) -> dict:
    store_cls = _store_class(module_file)
    n_batches, rows = (5, 20_000) if quick else (20, 100_000)
    symbols = SymbolTable([f"S{i:03d}" for i in range(100)])
    batches = _batches(n_batches, rows, len(symbols))
    total = n_batches * rows
    first, second, first_cpu, second_cpu, kept = [], [], [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp, store_cls(f"chdb://{tmp}") as store:
            t0, c0 = time.perf_counter(), time.process_time()
            for b in batches:
                store.insert_ticks(b, symbols, source="bench")
            t1, c1 = time.perf_counter(), time.process_time()
            for b in batches:
                store.insert_ticks(b, symbols, source="bench")
            t2, c2 = time.perf_counter(), time.process_time()
            first.append(total / (t1 - t0))
            second.append(total / (t2 - t1))
            first_cpu.append(total / (c1 - c0))
            second_cpu.append(total / (c2 - c1))
            kept.append(store.counts()["ticks"])
    return {"ticks": total, "batch_rows": rows, "repeats": repeats,
            "module": module_file or "tripwire.store.ticks",
            "insert_ticks_per_s": round(statistics.median(first)),
            "reinsert_ticks_per_s": round(statistics.median(second)),
            "insert_ticks_per_cpu_s": round(statistics.median(first_cpu)),
            "reinsert_ticks_per_cpu_s": round(statistics.median(second_cpu)),
            "rows_after_reinsert": kept[-1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--module-file", default=None)
    a = p.parse_args()
    print(json.dumps(run(a.quick, a.module_file, a.repeats)))


if __name__ == "__main__":
    main()
