"""``--source news=NAME@URL,...``: RSS/Atom sources as a live source of the registry.

Each item is ``NAME@URL`` (the name is the source's provenance); a bare ``news`` source
polls the ``[news] sources`` of the settings instead (each with its own limits).
``spec.options`` may carry ``aliases`` (``{"BTCUSDT": ["BTC", "bitcoin"]}``),
``max_seen``, ``min_interval_s`` and ``silence_after_s`` for every source, and
``max_age_s`` for the poller. The drivers fill ``aliases``, ``max_seen`` and ``sources``
from the settings' ``[news]`` table (:func:`settings_options`) unless the spec gives its
own.

>>> cfg = config_from_items(["coindesk@https://example.org/rss"], {"min_interval_s": 120})
>>> cfg.sources[0].name, cfg.sources[0].min_interval_s
('coindesk', 120.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tripwire.adapters.news.config import NewsConfig

_PER_SOURCE = ("min_interval_s", "silence_after_s", "timeout_s")


def config_from_items(items: Sequence[str], options: Mapping[str, Any]) -> NewsConfig:
    """The poller's config: the spec's ``NAME@URL`` items, else ``options["sources"]`` (the
    settings' ``[news] sources`` tables, validated by :class:`NewsConfig`).

    >>> config_from_items([], {"sources": [{"name": "a", "url": "https://a.example/rss",
    ...                                     "min_interval_s": 300}]}).sources[0].min_interval_s
    300.0
    >>> config_from_items([], {})
    Traceback (most recent call last):
    ...
    ValueError: news needs sources: news=coindesk@https://.../rss, or [news] sources
    """
    if not items and options.get("sources"):
        table: dict[str, Any] = {"sources": list(options["sources"]),
                                 "aliases": dict(options.get("aliases", {}))}
        if "max_seen" in options:
            table["max_seen"] = options["max_seen"]
        return NewsConfig.from_table(table)
    if not items:
        raise ValueError("news needs sources: news=coindesk@https://.../rss, or [news] sources")
    sources = []
    for item in items:
        name, sep, url = item.partition("@")
        if not sep:
            raise ValueError(f"news source {item!r} is not NAME@URL")
        sources.append({"name": name.strip(), "url": url.strip(),
                        **{k: options[k] for k in _PER_SOURCE if k in options}})
    table = {"sources": sources, "aliases": dict(options.get("aliases", {}))}
    if "max_seen" in options:
        table["max_seen"] = options["max_seen"]
    return NewsConfig.from_table(table)


def settings_options(news_table: Mapping[str, Any], options: Mapping[str, Any]) -> dict:
    """``options`` with ``aliases``/``max_seen`` (and ``sources``, polled when the spec names
    none) from ``[news]`` where the spec has none (the table is validated here: a bad alias
    names ``news.aliases.<symbol>``, a bad source ``news.sources.<i>.<key>``)."""
    cfg = NewsConfig.from_table(dict(news_table))
    out = dict(options)
    if news_table.get("sources"):
        out.setdefault("sources", [dict(s) for s in news_table["sources"]])
    out.setdefault("aliases", {s: list(w) for s, w in cfg.aliases.items()})
    if "max_seen" in news_table:
        out.setdefault("max_seen", cfg.max_seen)
    return out


def feed_from_spec(spec: Any) -> Any:
    from tripwire.adapters.news.poller import NewsPoller

    options = dict(getattr(spec, "options", {}) or {})
    kw = {k: options[k] for k in ("max_age_s", "clock") if k in options}
    return NewsPoller(config_from_items(spec.symbols, options), **kw)
