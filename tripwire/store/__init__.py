"""Persistence adapters: the tick store (ClickHouse through clickhouse-connect, chdb embedded).

Import the store you need from its module (``tripwire.store.ticks``), so that code using one
store does not pay for the clients of the others.
"""
