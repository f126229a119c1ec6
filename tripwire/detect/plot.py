"""The recall-vs-size curve of ``tripwire detect-eval`` as a PNG (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(runs: list[dict[str, Any]], path: Path) -> Path:
    """One panel per run (``nu``): recall against event size, one line per tier."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    runs = [r for r in runs if "recall_curve" in r]
    if not runs:
        raise ValueError("no event pass to plot (--no-events)")
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4.2), squeeze=False)
    for ax, r in zip(axes[0], runs, strict=True):
        buckets = r["size_buckets"]
        x = [float(b.rstrip("%")) for b in buckets]
        for tier, row in r["recall_curve"].items():
            pts = [(xi, row[b]["recall"]) for xi, b in zip(x, buckets, strict=True)
                   if row.get(b, {}).get("recall") is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=tier)
        ax.set_xscale("log")
        ax.set_xticks(x, buckets)
        ax.minorticks_off()
        ax.set_xlabel("event size (% price move)")
        ax.set_ylabel("recall")
        ax.set_ylim(-0.02, 1.02)
        d = r["scenario"]
        ax.set_title(f"{d['scenario']} seed {d['seed']}, nu={d['nu']:g}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
