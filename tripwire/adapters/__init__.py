"""Venue adapters: one folder per venue, the same parts in each.

Venues: ``binance/`` (trade/aggTrade WebSocket streams, data.binance.vision dumps),
``ccxt/`` (any ccxt.pro exchange's live trades: OKX, Bybit, Coinbase, Kraken, ...),
``polymarket/`` (CLOB market channel) and ``news/`` (RSS/Atom and signed webhooks).

How to add a venue ``<venue>``:

1. Write ``tripwire/adapters/<venue>/`` with these parts (a part the venue lacks is left out):

   * ``config.py`` -- endpoints, limits and the settings the feed is built from;
   * ``schemas.py`` -- wire messages -> :class:`tripwire.adapters.live.TradeRow` s or dead
     letters with a reason and a detail (pure functions, no I/O; judge form, leave values
     to the :class:`~tripwire.feeds.validate.TickValidator`);
   * ``websocket.py`` -- the live client: subclass :class:`tripwire.adapters.live.LiveTradeFeed`
     and write ``_session`` (open, subscribe, read until the connection ends), calling
     ``_opened``/``_closed``, ``_note_message`` per message and ``_on_trade``/``_add_dead``;
     buffering, batching, validation (duplicates and gaps by trade id), bounds, capped
     jittered backoff, per-source heartbeats and stats come with the base class;
   * ``loader.py`` -- historical files or recordings as a :class:`tripwire.feeds.base.IterableFeed`;
   * ``instruments.py`` -- the venue's instruments/markets -> tripwire symbol names (and
     ``probability_symbols()`` where prices are probabilities: scored on log-odds);
     market events (resolution, halt) go out in ``FeedChunk.events``; a ``halt`` naming a
     symbol stops its trading (:mod:`tripwire.adapters.market_state`);
   * ``execution.py`` -- where the venue trades: the execution client behind
     :class:`tripwire.execution.base.Broker` (ccxt venues reference ``CcxtBroker``).

2. Register the live source: one entry in :data:`tripwire.adapters.registry.FACTORIES`
   (``"<venue>": factory`` taking a :class:`~tripwire.adapters.registry.SourceSpec`). Then
   ``tripwire ingest --source <venue>=SYM,SYM`` and the live job take it, alone or beside
   other sources (:class:`tripwire.adapters.multi.MultiFeed`).

3. Pass the feed conformance suite: write ``tests/adapters/<venue>/server.py`` (a
   :class:`tests.adapters.loopback.ReplayServer` subclass speaking the venue's requests) and
   ``tests/adapters/<venue>/kit.py`` with a ``KIT``
   (:class:`tests.adapters.conformance.VenueKit`); ``tests/adapters/test_conformance.py``
   finds it and checks delivery with exchange and arrival times, reconnect and resubscribe
   without a lost or doubled trade, gap reports, dead-lettered garbage, silence detection,
   and capped jittered backoff. Add the parser to ``benchmarks/adapters.py``.
"""
