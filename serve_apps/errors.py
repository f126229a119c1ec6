"""What a fault behind the API means for its caller: unwrap Ray's wrappers, spot outages.

An exception raised in a Serve replica reaches the ingress wrapped in a
``ray.exceptions.RayTaskError`` (with ``cause``); when Ray cannot make the wrapper an
instance of the cause's class too (pydantic's ``ValidationError`` is one), an
``except ValueError`` in the ingress misses it. :func:`unwrap` returns the original.

:func:`is_database_outage` says whether a fault is PostgreSQL being unreachable (refused or
cut connections, a server shutting down or starting up, a closed pool, too many
connections): the API answers those 503 ``database_unavailable`` instead of 500, so a
client knows a retry is safe and useful. :func:`is_service_outage` does the same for a
deployment replica or actor that died or is overloaded.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

_NET_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE,
               errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.ENOTCONN}
_MAX_DEPTH = 16  # causes followed at most (a cycle of __context__ cannot loop forever)


def unwrap(exc: BaseException) -> BaseException:
    """The exception a Ray task or Serve replica raised, without Ray's wrappers."""
    from ray.exceptions import RayTaskError

    for _ in range(_MAX_DEPTH):
        if not isinstance(exc, RayTaskError):
            return exc
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException):
            return exc
        exc = cause
    return exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < _MAX_DEPTH:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend((e.__cause__, e.__context__, getattr(e, "cause", None)))


def is_database_outage(exc: BaseException) -> bool:
    import asyncpg

    outage = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
              asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.AdminShutdownError,
              asyncpg.exceptions.CrashShutdownError, asyncpg.exceptions.TooManyConnectionsError,
              ConnectionError)
    for e in _chain(exc):
        if isinstance(e, outage):
            return True
        # asyncpg's connect trying several addresses raises a bare OSError("Multiple
        # exceptions: ...") that carries no errno.
        if isinstance(e, OSError) and (e.errno in _NET_ERRNOS
                                       or str(e).startswith("Multiple exceptions")):
            return True
    return False


def is_service_outage(exc: BaseException) -> bool:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    kinds: tuple[type[BaseException], ...] = (ActorDiedError, ActorUnavailableError,
                                              RayActorError)
    try:
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
        kinds += (BackPressureError, DeploymentUnavailableError)
    except ImportError:  # an older Serve without them
        pass
    return any(isinstance(e, kinds) for e in _chain(exc))
