"""Binance: trade/aggTrade WebSocket streams, public trade dumps, and (through ccxt) orders.

Parts: :mod:`.config` (endpoints and limits), :mod:`.schemas` (wire messages -> rows or dead
letters), :mod:`.websocket` (the live feed), :mod:`.loader` (data.binance.vision dumps;
:mod:`.fastnum` is its vectorised number parser), :mod:`.instruments` (stream names ->
symbols), :mod:`.execution` (orders go through the ccxt broker in ``tripwire.execution``).
"""
