"""Any ccxt exchange's live trades (OKX, Bybit, Coinbase, Kraken, ...) through ``ccxt.pro``.

Parts: :mod:`.config` (exchange id, symbols, URL overrides), :mod:`.schemas` (ccxt's unified
trade -> a tick row or a dead letter), :mod:`.instruments` (markets -> tripwire symbol
names), :mod:`.websocket` (the live feed on ``watch_trades``), :mod:`.loader` (recorded
unified trades, JSON lines), :mod:`.execution` (orders: the ccxt broker).
"""
