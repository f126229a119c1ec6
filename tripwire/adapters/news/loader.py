"""A recorded RSS/Atom document as news items (replays and tests), with the poller's rules.

A recording has no arrival times, so the caller says when the document was fetched
(``fetched_ns``): every item's ``ts_ns`` is ``max(published, fetched_ns)`` -- a replay can
show a headline no earlier than the system could have read it. Without ``fetched_ns`` the
source's time is taken, and the caller vouches that the recording was read as it was
published (a simulated wire). Tagging and de-duplication are the poller's.

>>> from tripwire.adapters.news.config import NewsConfig
>>> doc = b'''<rss version="2.0"><channel><item><title>Bitcoin ETF approved</title>
...   <pubDate>Mon, 07 Dec 2026 06:00:00 GMT</pubDate></item></channel></rss>'''
>>> cfg = NewsConfig(aliases={"BTCUSDT": ("bitcoin",)})
>>> items, dead = read_document(doc, "wire", cfg, fetched_ns=1796623260000000000)
>>> items[0].symbols, items[0].ts_ns - items[0].published_ns, dead
(('BTCUSDT',), 60000000000, [])
"""

from __future__ import annotations

from pathlib import Path

from tripwire.adapters.news.config import NewsConfig
from tripwire.adapters.news.instruments import SymbolTagger
from tripwire.adapters.news.schemas import dedup_keys, item_id, parse_document
from tripwire.model import DeadLetter, NewsItem

SOURCE = "news-file"


def read_document(body: bytes, source_name: str, config: NewsConfig, *,
                  fetched_ns: int | None = None) -> tuple[list[NewsItem], list[DeadLetter]]:
    """The items of one recorded document (a malformed one: no items, one dead letter)."""
    now = fetched_ns or 0
    entries, letter = parse_document(body, source=f"{SOURCE}:{source_name}", now_ns=now)
    if letter is not None:
        return [], [letter]
    tagger, seen, items = SymbolTagger(config.aliases), set(), []
    for e in entries:
        keys = dedup_keys(e)
        if any(k in seen for k in keys):
            continue
        seen.update(keys)
        published = e.published_ns or 0
        ts = max(published, fetched_ns) if fetched_ns is not None else published
        if ts <= 0:
            continue  # neither a source time nor a fetch time: unplaceable, not guessed
        body_text = " ".join(x for x in (e.summary[:1000], e.link) if x)
        items.append(NewsItem(item_id(e), ts, e.title, tagger.tag(e.title), source_name,
                              body_text, published))
    items.sort(key=lambda n: (n.ts_ns, n.id))
    return items, []


def read_file(path: str | Path, source_name: str, config: NewsConfig, *,
              fetched_ns: int | None = None) -> tuple[list[NewsItem], list[DeadLetter]]:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"news file {p} does not exist")
    return read_document(p.read_bytes(), source_name, config, fetched_ns=fetched_ns)
