"""The ccxt client of one venue: credentials, sandbox and URLs, bounded retries, typed errors.

:class:`CcxtSession` is the only place that calls ccxt and turns its exceptions into the
typed errors of :mod:`tripwire.execution.base` (the broker in :mod:`.exchange` decides *what*
to call; this module decides *how*):

* Credentials come from two environment variables whose NAMES are configured (``[execution]
  api_key_env``/``secret_env``); a missing or empty one is refused before any network call,
  naming the variable. The values are held only by the ccxt client (for signing) and by the
  scrubber that removes them from every message this module produces.
* ``sandbox=True`` switches ccxt to the venue's testnet; a venue without one is refused
  (never silently trading on the live venue instead). ``urls`` then overrides entries of
  ``urls["api"]`` (a proxy, or the loopback exchange of the tests).
* Errors: network/timeouts/5xx -> :class:`BackendUnavailable`, throttling ->
  :class:`RateLimited`, credentials -> :class:`AuthenticationFailed`, lack of funds ->
  :class:`InsufficientFunds`, invalid orders and bad requests while placing ->
  :class:`OrderRejected` (with the venue's message), order not found -> :class:`UnknownOrder`.
  Retryable errors are retried at most ``max_retries`` times with capped exponential backoff;
  ``stats`` counts retries and failures by kind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import ccxt

from tripwire.execution.base import (
    AuthenticationFailed,
    BackendUnavailable,
    ExecutionError,
    InsufficientFunds,
    OrderRejected,
    RateLimited,
    UnknownOrder,
)
from tripwire.execution.ccxt_mapping import guess_field, with_context

__all__ = ["DEFAULT_KEY_ENV", "DEFAULT_SECRET_ENV", "CcxtSession", "credentials"]

log = logging.getLogger("tripwire.execution.exchange")

DEFAULT_KEY_ENV = "TRIPWIRE_EXCHANGE_API_KEY"
DEFAULT_SECRET_ENV = "TRIPWIRE_EXCHANGE_SECRET"


class CcxtSession:
    """One ccxt exchange client with retries, error translation and secret scrubbing."""

    def __init__(
        self,
        exchange_id: str,
        env: Mapping[str, str],
        *,
        sandbox: bool = False,
        api_key_env: str = DEFAULT_KEY_ENV,
        secret_env: str = DEFAULT_SECRET_ENV,
        exchange_options: Mapping[str, Any] | None = None,
        urls: Mapping[str, str] | None = None,
        max_retries: int = 3,
        backoff_base_s: float = 0.25,
        backoff_cap_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.exchange_id = exchange_id
        self.sandbox = sandbox
        self.max_retries = max_retries
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._sleep = sleep
        self.stats: dict[str, Any] = {"retries": 0, "failures": {}, "fees_unconverted": 0}
        key, secret = credentials(exchange_id, env, api_key_env, secret_env)
        # Kept only to scrub them from messages; the ccxt client holds them for signing.
        self._redact = [s for s in (secret, key) if s]
        self.exchange = _make_exchange(exchange_id, key, secret, exchange_options or {})
        if sandbox:
            try:
                self.exchange.set_sandbox_mode(True)
            except ccxt.NotSupported:
                raise ValueError(f"{exchange_id} has no sandbox (testnet) in ccxt; set "
                                 "sandbox = false only to trade on the live venue") from None
        if urls:
            api = self.exchange.urls.get("api")
            self.exchange.urls["api"] = {**api, **urls} if isinstance(api, dict) else dict(urls)
        self.closed = False

    def close(self) -> None:
        """Release the HTTP session; further calls fail. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        session = getattr(self.exchange, "session", None)
        if session is not None:
            session.close()

    def call(
        self,
        operation: str,
        fn: Callable[..., Any],
        *args: Any,
        order_id: str = "",
        missing_ok: bool = False,
    ) -> Any:
        """Call ccxt, retrying retryable errors at most ``max_retries`` times.

        ``missing_ok``: an order-not-found answer is an expected outcome (lookups), so it
        returns None instead of raising and counting a failure.
        """
        if self.closed:
            raise ExecutionError(f"{self.exchange_id} {operation}: broker is closed")
        for attempt in range(self.max_retries + 1):
            try:
                return fn(*args)
            except ccxt.OrderNotFound as exc:
                if missing_ok:
                    return None
                raise self.fail(self.translate(exc, operation, order_id)) from exc
            except ccxt.NetworkError as exc:
                if attempt == self.max_retries:
                    raise self.fail(self.translate(exc, operation, order_id)) from exc
                self.backoff_sleep(attempt, operation, exc)
            except ccxt.BaseError as exc:
                raise self.fail(self.translate(exc, operation, order_id)) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def backoff_sleep(self, attempt: int, operation: str, exc: BaseException | None) -> None:
        base, cap = self._backoff
        delay = min(cap, base * 2**attempt)
        self.stats["retries"] += 1
        log.warning("%s %s: retry %d in %.2fs after %s", self.exchange_id, operation,
                    attempt + 1, delay, self.scrub(type(exc).__name__))
        self._sleep(delay)

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    def fail(self, error: ExecutionError) -> ExecutionError:
        """``error``, counted in ``stats["failures"]`` by kind."""
        failures = self.stats["failures"]
        kind = type(error).__name__
        failures[kind] = failures.get(kind, 0) + 1
        return error

    def where(self, operation: str) -> str:
        return f"{self.exchange_id} {operation}"

    def scrub(self, text: str) -> str:
        for value in self._redact:
            text = text.replace(value, "***")
        return text

    def translate(self, exc: ccxt.BaseError, operation: str, order_id: str) -> ExecutionError:
        """The tripwire error for a ccxt one; messages name venue and operation, no secrets."""
        message = f"{self.where(operation)}: {self.scrub(str(exc))}"
        kw = {"venue": self.exchange_id, "operation": operation}
        if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
            return RateLimited(
                f"{message} (rate limited; gave up after {self.max_retries} retries)", **kw
            )
        if isinstance(exc, ccxt.NetworkError):
            return BackendUnavailable(f"{message} (gave up after {self.max_retries} retries)", **kw)
        if isinstance(exc, ccxt.AuthenticationError):
            return AuthenticationFailed(
                f"{message} (check the API key, secret and permissions)", **kw
            )
        if isinstance(exc, ccxt.InsufficientFunds):
            return InsufficientFunds(message)
        if isinstance(exc, ccxt.OrderNotFound):
            return with_context(UnknownOrder(order_id), message)
        if isinstance(exc, ccxt.BadSymbol):
            return OrderRejected("symbol", message)
        if isinstance(exc, ccxt.InvalidOrder) or (
            operation == "place" and isinstance(exc, ccxt.BadRequest)
        ):
            return OrderRejected(guess_field(str(exc)), message)
        return ExecutionError(message)


def credentials(
    exchange_id: str, env: Mapping[str, str], key_var: str, secret_var: str
) -> tuple[str, str]:
    """The key and secret from the variables so named; refused, naming the variable, when
    one is missing or empty (fail closed at start-up, before any network call)."""
    for var in (key_var, secret_var):
        if not env.get(var):
            raise AuthenticationFailed(
                f"{exchange_id}: environment variable {var} is not set (or empty); it must hold "
                "the exchange API credentials",
                venue=exchange_id,
                operation="configure",
            )
    return env[key_var], env[secret_var]


def _make_exchange(exchange_id: str, key: str, secret: str, options: Mapping[str, Any]) -> Any:
    cls = getattr(ccxt, exchange_id, None) if exchange_id in ccxt.exchanges else None
    if cls is None:
        raise ValueError(f"unknown ccxt exchange id {exchange_id!r}")
    return cls({**options, "apiKey": key, "secret": secret})
