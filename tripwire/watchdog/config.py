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

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic.dataclasses import dataclass

from tripwire.config import load_settings, register_section
from tripwire.config_model import STRICT, validate
from tripwire.model import NS_PER_SECOND

ENV_PREFIX = "TRIPWIRE_WATCHDOG__"
DSN_ENV = "TRIPWIRE_WATCHDOG_DSN"


def _pos(default: float, hi: float | None = None) -> Any:
    return Field(default, gt=0, le=hi, allow_inf_nan=False)


# A pydantic dataclass: validated like every section model, built by keyword in tests.
@dataclass(frozen=True, config=STRICT)
class WatchdogConfig:
    """``[watchdog]``: what the watchdog checks, how often, and whom it tells."""

    interval_s: float = _pos(5.0)
    # While the database is unreachable the watchdog retries this often, so the
    # database_outage halt is written at most this long after the database is back.
    outage_retry_s: float = _pos(0.5, 60.0)
    heartbeats: tuple[str, ...] = ("feed:*", "shard:*")  # fnmatch patterns of components
    heartbeat_max_age_s: float = _pos(30.0)
    max_drawdown: float = _pos(0.10, 1.0)  # fraction of peak equity
    max_gross_exposure: float = Field(50_000.0, ge=0, allow_inf_nan=False)  # quote currency
    require_stops: bool = True
    # A position's mark older than this on the execution side's clock (or with ticks the
    # venue refused) halts: its stop is not being checked. Generous for quiet symbols.
    mark_max_age_s: float = _pos(900.0)
    flatten_on_halt: bool = False
    webhook_url: str | None = None
    webhook_timeout_s: float = _pos(5.0)
    api_timeout_s: float = _pos(5.0)
    api_token_env: str = "TRIPWIRE_API_TOKEN"

    @field_validator("heartbeats", mode="before")
    @classmethod
    def _patterns(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or not all(
                isinstance(p, str) and p.strip() for p in value):
            raise ValueError(f"watchdog.heartbeats must be a list of non-empty component "
                             f"patterns (e.g. [\"shard:*\"]), got {value!r}")
        return tuple(p.strip() for p in value)

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _optional_url(cls, value: Any) -> str | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ValueError(f"watchdog.webhook_url must be an http(s) URL, got {value!r}")
        return value

    @field_validator("api_token_env", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"watchdog.api_token_env must be a non-empty string, "
                             f"got {value!r}")
        return value.strip()

    @property
    def heartbeat_max_age_ns(self) -> int:
        return int(self.heartbeat_max_age_s * NS_PER_SECOND)

    @property
    def mark_max_age_ns(self) -> int:
        return int(self.mark_max_age_s * NS_PER_SECOND)


def load_watchdog_config(table: Mapping[str, Any]) -> WatchdogConfig:
    """Validate a ``[watchdog]`` table (missing keys keep their defaults)."""
    if not isinstance(table, Mapping):
        raise ValueError(f"[watchdog] must be a table, got {table!r}")
    return validate(WatchdogConfig, table, "watchdog")


@dataclasses.dataclass(frozen=True, slots=True)
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
        raise settings.named(exc) from None
    return WatchdogFile(config, Path(settings.data_dir))


register_section("watchdog", WatchdogConfig,
                 lambda settings: load_watchdog_config(settings.table("watchdog")))
