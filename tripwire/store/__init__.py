"""Persistence adapters: the decision store, the tick store and the journal files.

* PostgreSQL (asyncpg): :mod:`.pg` (the private cluster or a DSN), :mod:`.migrate` and
  ``migrations/`` (the schema), :mod:`.decisions` (the DecisionStore protocol and the
  in-memory store) and :mod:`.pg_decisions` (the PostgreSQL one), :mod:`.paper_book`
  (the paper venue's durable book), :mod:`.explain` (one decision's whole chain);
* the tick store: ClickHouse through clickhouse-connect, or chdb embedded
  (:mod:`.ticks`; its URLs in :mod:`.tick_urls`, its tables in :mod:`.tick_schema`);
* :mod:`.journal`: one decision's journal as files.

Import the store you need from its module, so that code using one store does not pay for
the clients of the others.
"""
