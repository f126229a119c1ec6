"""Polymarket: the CLOB market channel (WebSocket) and the data API's trades history.

Parts, as for every venue (``tripwire/adapters/<venue>/``):

* :mod:`.config` -- ``[polymarket]`` settings (endpoint, markets, bounds), validated;
* :mod:`.schemas` -- wire messages -> trade rows, quote counts, venue events or dead letters;
* :mod:`.instruments` -- the outcome tokens followed (asset id -> symbol), their tick size,
  best bid/ask and resolution state; every symbol here is a probability (see
  :mod:`tripwire.detect.transform` for how the detectors score it);
* :mod:`.websocket` -- the market-channel client (a validated, reconnecting feed);
* :mod:`.loader` -- a recorded trades-history file as a replay feed.

Polymarket is data only here: no execution client (orders on a prediction market go
through no backend of this system).
"""
