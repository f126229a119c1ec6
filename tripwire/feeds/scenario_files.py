"""A scenario's labels and news as JSON-lines files: written by
:meth:`tripwire.feeds.scenario.Scenario.write_labels` / ``write_news``, read back here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tripwire.model import (
    EventKind,
    EventLabel,
    NewsItem,
)

# ----------------------------------------------------------------------------- files


def label_dict(label: EventLabel) -> dict[str, Any]:
    return {
        "id": label.id, "kind": label.kind.value, "symbol": label.symbol,
        "start_ns": label.start_ns, "end_ns": label.end_ns, "magnitude": label.magnitude,
        "news_id": label.news_id,
    }  # fmt: skip


def news_dict(item: NewsItem) -> dict[str, Any]:
    return {
        "id": item.id, "ts_ns": item.ts_ns, "headline": item.headline,
        "symbols": list(item.symbols), "source": item.source, "body": item.body,
    }  # fmt: skip


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    return path


def read_labels(path: str | Path) -> list[EventLabel]:
    """Labels written by :meth:`Scenario.write_labels`."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        out.append(
            EventLabel(
                d["id"], EventKind(d["kind"]), d["symbol"], int(d["start_ns"]),
                int(d["end_ns"]), float(d["magnitude"]), d.get("news_id"),
            )
        )  # fmt: skip
    return out


def read_news(path: str | Path) -> list[NewsItem]:
    """News written by :meth:`Scenario.write_news`."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        out.append(
            NewsItem(
                d["id"], int(d["ts_ns"]), d["headline"], tuple(d["symbols"]),
                d.get("source", ""), d.get("body", ""),
            )
        )  # fmt: skip
    return out
