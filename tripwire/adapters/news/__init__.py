"""News feeds: RSS/Atom sources polled over HTTP, and the parts every adapter has.

* :mod:`.config` -- ``[news]`` ``sources`` (name, url, rate limit, silence bound) and
  ``aliases`` (symbol -> words that tag a headline to it), validated;
* :mod:`.schemas` -- a feed document -> entries (feedparser), or a dead letter when it is
  not well-formed XML; headline normalisation and the de-duplication keys;
* :mod:`.instruments` -- the symbols a headline is about (alias tagging);
* :mod:`.poller` -- the HTTP client (the venue's "websocket" part): conditional GETs,
  per-source rate limits, silence detection, heartbeats; yields FeedChunks with news;
* :mod:`.loader` -- a recorded feed file as news items (replays, tests).

A source's configured **name is its provenance** (``NewsItem.source``): ``[news]
trusted_sources`` (:mod:`tripwire.decisions.provenance`) names the sources whose headlines
may support a trade. **No look-ahead**: an item's ``ts_ns`` -- the time the engine's news
window and every incident use -- is ``max(published, arrival)``; its source time is kept
in ``published_ns``.
"""
