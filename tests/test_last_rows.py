"""``tripwire.model.last_rows`` (the venue's and the prices' per-batch step) answers what
``np.unique`` on the reversed column answered, without the sort."""

import numpy as np

from tripwire.model import last_rows


def reference(sid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, rev = np.unique(sid[::-1], return_index=True)
    return uniq, len(sid) - 1 - rev


def test_last_rows_matches_the_sorted_reference():
    rng = np.random.default_rng(3)
    for n, k, low in ((0, 5, 0), (1, 1, 0), (50, 3, 0), (5_000, 1_000, 0), (300, 40, -7)):
        sid = rng.integers(low, k, n).astype(np.int32)
        uniq, rows = last_rows(sid)
        ref_uniq, ref_rows = reference(sid)
        assert uniq.tolist() == ref_uniq.tolist() and rows.tolist() == ref_rows.tolist()
        assert uniq.dtype == np.int32
