"""``[execution]``: which broker every driver trades through, and how to reach an exchange.

``broker`` is ``"paper"`` (the simulated venue, its book in PostgreSQL in the Serve app),
``"backtest"`` (the paper venue on the replayed ticks' own clock) or ``"ccxt"`` (a real
exchange). For ccxt, ``exchange`` is a ccxt exchange id, ``sandbox`` (default true) selects
the venue's testnet, and ``api_key_env``/``secret_env`` are the NAMES of the environment
variables holding the credentials: the values never appear in the config, ``config show``,
logs or errors. ``urls`` overrides entries of ccxt's ``urls["api"]`` (a proxy, or the
loopback exchange of the tests).

No ccxt import here: settings load without the exchange library; the exchange id and the
credentials are checked when the broker is built (:func:`tripwire.execution.factory.
build_broker`), which is every driver's start-up.

>>> ExecutionSettings().broker, ExecutionSettings().sandbox
('paper', True)
>>> from tripwire.config_model import validate
>>> validate(ExecutionSettings, {"broker": "ccxt"}, "execution")
Traceback (most recent call last):
...
ValueError: execution.exchange must name a ccxt exchange id (e.g. "binance") when broker = "ccxt"
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from tripwire.config_model import Section

__all__ = ["BROKERS", "ExecutionSettings"]

BROKERS = ("paper", "backtest", "ccxt")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECONDS = {"kind": "a number of seconds"}


class ExecutionSettings(Section):
    """``[execution]``: the broker (paper, backtest or ccxt) and, for ccxt, the exchange."""

    broker: Literal["paper", "backtest", "ccxt"] = Field(
        "paper", json_schema_extra={"expect": 'one of "paper", "backtest", "ccxt"'})
    exchange: str = ""  # ccxt exchange id ("binance", "bybit", ...); ccxt only
    sandbox: bool = True  # the exchange's testnet: trading real money is an explicit choice
    api_key_env: str = "TRIPWIRE_CCXT_API_KEY"  # the variable's NAME, never the key
    secret_env: str = "TRIPWIRE_CCXT_SECRET"  # the variable's NAME, never the secret
    urls: dict[str, str] = Field(default_factory=dict)  # over ccxt's urls["api"] entries
    timeout_s: float = Field(10.0, gt=0, le=300, json_schema_extra=_SECONDS)
    max_retries: int = Field(3, ge=0, le=10)  # of a retryable venue error, per call
    rate_limit: bool = True  # ccxt's own client-side throttle (enableRateLimit)
    # how often the live service asks the exchange about its working orders (fills, cancels)
    poll_s: float = Field(2.0, gt=0, le=3600, json_schema_extra=_SECONDS)
    quote: str = ""  # the account's currency; "" when all symbols quote in one
    symbol_map: dict[str, str] = Field(default_factory=dict)  # tripwire -> ccxt symbol
    ccxt_options: dict[str, Any] = Field(default_factory=dict)  # ccxt's ``options``

    @model_validator(mode="after")
    def _ccxt_needs(self) -> ExecutionSettings:
        if self.broker == "ccxt" and not self.exchange:
            raise ValueError('execution.exchange must name a ccxt exchange id '
                             '(e.g. "binance") when broker = "ccxt"')
        for key in ("api_key_env", "secret_env"):
            if not _ENV_NAME.match(getattr(self, key)):
                raise ValueError(f"execution.{key} must be the NAME of an environment "
                                 f"variable, got {getattr(self, key)!r}")
        return self

    def ccxt_constructor_options(self) -> dict[str, Any]:
        """What goes to the ccxt exchange's constructor, besides the credentials."""
        return {"options": dict(self.ccxt_options), "timeout": int(self.timeout_s * 1000),
                "enableRateLimit": self.rate_limit}
