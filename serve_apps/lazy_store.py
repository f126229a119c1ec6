"""A PostgreSQL decision store that connects on first use, on the caller's event loop.

A Serve replica's constructor runs before its event loop serves requests; asyncpg's pool
must be created on the loop that uses it, so replicas hold a :class:`LazyStore` and every
method call connects once (under a lock) and delegates.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tripwire.store.pg_decisions import PgDecisionStore


class LazyStore:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._store: PgDecisionStore | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> PgDecisionStore:
        if self._store is None:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._store is None:
                    self._store = await PgDecisionStore.connect(self._dsn)
        return self._store

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await getattr(await self.get(), name)(*args, **kwargs)

        return call
