"""The watchdog's own configuration: a ``[watchdog]`` TOML table plus environment overrides.

The watchdog runs outside the trading processes with its own credentials, so it reads its own
table (and ``[data] dir`` for the private cluster) rather than the whole settings file.
Environment overrides ``TRIPWIRE_WATCHDOG__<KEY>`` are read as TOML scalars. A bad value
raises ValueError naming the key.

>>> load_watchdog_config({"interval_s": 2, "heartbeats": ["shard:*"]}).interval_s
2.0
>>> load_watchdog_config({"max_drawdown": 1.5})
Traceback (most recent call last):
...
ValueError: watchdog.max_drawdown must be a number in (0, 1], got 1.5
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripwire.config import load_settings
from tripwire.model import NS_PER_SECOND

ENV_PREFIX = "TRIPWIRE_WATCHDOG__"
DSN_ENV = "TRIPWIRE_WATCHDOG_DSN"


@dataclass(frozen=True, slots=True)
class WatchdogConfig:
    interval_s: float = 5.0
    # While the database is unreachable the watchdog retries this often, so the
    # database_outage halt is written at most this long after the database is back.
    outage_retry_s: float = 0.5
    heartbeats: tuple[str, ...] = ("feed:*", "shard:*")  # fnmatch patterns of components
    heartbeat_max_age_s: float = 30.0
    max_drawdown: float = 0.10  # fraction of peak equity
    max_gross_exposure: float = 50_000.0  # quote currency
    require_stops: bool = True
    # A position's mark older than this on the execution side's clock (or with ticks the
    # venue refused) halts: its stop is not being checked. Generous for quiet symbols.
    mark_max_age_s: float = 900.0
    flatten_on_halt: bool = False
    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0
    api_timeout_s: float = 5.0
    api_token_env: str = "TRIPWIRE_API_TOKEN"

    @property
    def heartbeat_max_age_ns(self) -> int:
        return int(self.heartbeat_max_age_s * NS_PER_SECOND)

    @property
    def mark_max_age_ns(self) -> int:
        return int(self.mark_max_age_s * NS_PER_SECOND)


def _number(key: str, value: Any, lo: float, hi: float = math.inf, *,
            lo_open: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        low = "(" if lo_open else "["
        high = f"{hi:g}]" if math.isfinite(hi) else "inf)"
        raise ValueError(f"watchdog.{key} must be a number in {low}{lo:g}, {high}, got {value!r}")
    return float(value)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"watchdog.{key} must be true or false, got {value!r}")
    return value


def _patterns(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(
            isinstance(p, str) and p.strip() for p in value):
        raise ValueError(f"watchdog.heartbeats must be a list of non-empty component "
                         f"patterns (e.g. [\"shard:*\"]), got {value!r}")
    return tuple(p.strip() for p in value)


def _optional_url(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"watchdog.webhook_url must be an http(s) URL, got {value!r}")
    return value


def _name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"watchdog.{key} must be a non-empty string, got {value!r}")
    return value.strip()


_PARSERS = {
    "interval_s": lambda v: _number("interval_s", v, 0.0),
    "outage_retry_s": lambda v: _number("outage_retry_s", v, 0.0, 60.0),
    "heartbeats": _patterns,
    "heartbeat_max_age_s": lambda v: _number("heartbeat_max_age_s", v, 0.0),
    "max_drawdown": lambda v: _number("max_drawdown", v, 0.0, 1.0),
    "max_gross_exposure": lambda v: _number("max_gross_exposure", v, 0.0, lo_open=False),
    "require_stops": lambda v: _bool("require_stops", v),
    "mark_max_age_s": lambda v: _number("mark_max_age_s", v, 0.0),
    "flatten_on_halt": lambda v: _bool("flatten_on_halt", v),
    "webhook_url": _optional_url,
    "webhook_timeout_s": lambda v: _number("webhook_timeout_s", v, 0.0),
    "api_timeout_s": lambda v: _number("api_timeout_s", v, 0.0),
    "api_token_env": lambda v: _name("api_token_env", v),
}


def load_watchdog_config(table: Mapping[str, Any]) -> WatchdogConfig:
    """Validate a ``[watchdog]`` table (missing keys keep their defaults)."""
    if not isinstance(table, Mapping):
        raise ValueError(f"[watchdog] must be a table, got {table!r}")
    values = {}
    for key, value in table.items():
        parser = _PARSERS.get(key)
        if parser is None:
            raise ValueError(f"watchdog.{key} is not a known key of [watchdog] "
                             f"(known: {', '.join(sorted(_PARSERS))})")
        values[key] = parser(value)
    return WatchdogConfig(**values)


@dataclass(frozen=True, slots=True)
class WatchdogFile:
    config: WatchdogConfig
    data_dir: Path


def load_watchdog_file(path: str | os.PathLike | None = None,
                       env: Mapping[str, str] | None = None) -> WatchdogFile:
    """The ``[watchdog]`` table of ``path`` (else ``$TRIPWIRE_CONFIG``; none: defaults) with
    ``TRIPWIRE_WATCHDOG__*`` overrides, and the data directory (``[data] dir``)."""
    # The one settings loader reads the file and the TRIPWIRE_* overrides; [watchdog] is a
    # table it keeps raw for this module to validate.
    env = os.environ if env is None else env
    settings = load_settings(path, env)
    try:
        config = load_watchdog_config(settings.table("watchdog"))
    except ValueError as exc:
        origin = next((n for n in env if n.startswith(ENV_PREFIX) and str(exc).startswith(
            f"watchdog.{n[len(ENV_PREFIX):].lower()} ")), None)
        raise ValueError(f"{exc} (from {origin})" if origin else str(exc)) from None
    return WatchdogFile(config, Path(settings.data_dir))
