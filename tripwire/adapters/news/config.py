"""``[news]`` sources and aliases (``trusted_sources`` is the provenance module's key).

>>> cfg = NewsConfig.from_table({
...     "sources": [{"name": "coindesk", "url": "https://example.org/rss"}],
...     "aliases": {"BTCUSDT": ["BTC", "bitcoin"]}, "trusted_sources": ["coindesk"]})
>>> cfg.sources[0].min_interval_s, cfg.aliases["BTCUSDT"]
(60.0, ('BTC', 'bitcoin'))
>>> NewsConfig.from_table({"sources": [{"name": "x", "url": "ftp://a"}]})
Traceback (most recent call last):
...
ValueError: news.sources.0.url must be an http:// or https:// URL, got 'ftp://a'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tripwire.decisions.provenance import MAX_SOURCE_LEN

MAX_SOURCES = 100
MAX_ALIASES = 64  # per symbol
# Keys of [news] read elsewhere (tripwire.decisions.provenance).
FOREIGN_KEYS = {"trusted_sources"}
_KEYS = {"sources", "aliases", "max_seen"}
_SOURCE_KEYS = {"name", "url", "min_interval_s", "silence_after_s", "timeout_s"}


@dataclass(frozen=True, slots=True)
class NewsSource:
    """One RSS/Atom feed. ``name`` is its provenance (what ``trusted_sources`` names)."""

    name: str
    url: str
    min_interval_s: float = 60.0  # at most one request per interval (the rate limit)
    silence_after_s: float = 3600.0  # no new headline (or no answer) this long: silent
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class NewsConfig:
    sources: tuple[NewsSource, ...] = ()
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_seen: int = 100_000  # de-duplication keys remembered (the oldest are forgotten)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> NewsConfig:
        for key in table:
            if key not in _KEYS | FOREIGN_KEYS:
                known = ", ".join(sorted(_KEYS | FOREIGN_KEYS))
                raise ValueError(f"news.{key} is not a known key of [news] ({known})")
        raw = table.get("sources", [])
        if not isinstance(raw, list) or len(raw) > MAX_SOURCES:
            raise ValueError(f"news.sources must be a list of at most {MAX_SOURCES} tables")
        sources = tuple(_source(s, f"news.sources.{i}") for i, s in enumerate(raw))
        names = [s.name for s in sources]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"news.sources: the name {name!r} is used twice (a name is "
                                 "the source's provenance)")
        aliases = _aliases(table.get("aliases", {}))
        max_seen = table.get("max_seen", 100_000)
        if isinstance(max_seen, bool) or not isinstance(max_seen, int) or not max_seen > 0:
            raise ValueError(f"news.max_seen must be an integer > 0, got {max_seen!r}")
        return cls(sources, aliases, max_seen)


def _source(raw: object, key: str) -> NewsSource:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{key} must be a table, got {raw!r}")
    for k in raw:
        if k not in _SOURCE_KEYS:
            raise ValueError(f"{key}.{k} is not a known key ({', '.join(sorted(_SOURCE_KEYS))})")
    name = raw.get("name")
    if (not isinstance(name, str) or not 0 < len(name) <= MAX_SOURCE_LEN
            or not name.isprintable() or name != name.strip()):
        raise ValueError(f"{key}.name: {name!r} must be 1-{MAX_SOURCE_LEN} printable "
                         "characters without outer spaces")
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"{key}.url must be an http:// or https:// URL, got {url!r}")
    values = {}
    for k, default, low in (("min_interval_s", 60.0, 0.0), ("silence_after_s", 3600.0, 0.0),
                            ("timeout_s", 10.0, 0.0)):
        v = raw.get(k, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > low:
            raise ValueError(f"{key}.{k} must be a number > {low:g}, got {v!r}")
        values[k] = float(v)
    return NewsSource(name, url, **values)


def _aliases(raw: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"news.aliases must be a table of symbol = [words], got {raw!r}")
    out = {}
    for symbol, words in raw.items():
        if isinstance(words, str) or not isinstance(words, list) or not words \
                or len(words) > MAX_ALIASES:
            raise ValueError(f"news.aliases.{symbol} must be a list of 1-{MAX_ALIASES} words")
        for w in words:
            if not isinstance(w, str) or not w.strip() or len(w) > 64:
                raise ValueError(f"news.aliases.{symbol}: {w!r} is not a word (1-64 chars)")
        out[str(symbol)] = tuple(w.strip() for w in words)
    return out
