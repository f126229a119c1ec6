"""The watchdog: invariant checks outside the agent graphs, HALT on a breach, never resume.

``tripwire watchdog`` (see :mod:`tripwire.commands.watchdog`) runs :class:`Watchdog` in its own
process with its own configuration and credentials. The pieces:

* :mod:`.reasons` — halt reason codes, :func:`halt_code`, :func:`acknowledgement_error`
  (used by ``tripwire resume`` and the HTTP ``/v1/resume`` route);
* :mod:`.checks` — the invariants as pure functions over an :class:`AccountSnapshot`;
* :mod:`.control` — the :class:`ExecutionControl` port and its adapters;
* :mod:`.config` — :class:`WatchdogConfig` from a ``[watchdog]`` TOML table;
* :mod:`.loop` — :class:`Watchdog` and :class:`Alerter`.
"""

from tripwire.watchdog.checks import (
    AccountSnapshot,
    PositionView,
    check_drawdown,
    check_exposure,
    check_heartbeats,
    check_marks,
    check_stops,
)
from tripwire.watchdog.config import (
    DSN_ENV,
    WatchdogConfig,
    WatchdogFile,
    load_watchdog_config,
    load_watchdog_file,
)
from tripwire.watchdog.control import BrokerControl, ExecutionControl, HttpControl
from tripwire.watchdog.loop import WATCHDOG, Alerter, Watchdog
from tripwire.watchdog.reasons import (
    CODES,
    Breach,
    acknowledgement_error,
    halt_code,
    operator_reason,
    reason_for,
)

__all__ = [
    "CODES",
    "DSN_ENV",
    "WATCHDOG",
    "AccountSnapshot",
    "Alerter",
    "Breach",
    "BrokerControl",
    "ExecutionControl",
    "HttpControl",
    "PositionView",
    "Watchdog",
    "WatchdogConfig",
    "WatchdogFile",
    "acknowledgement_error",
    "check_drawdown",
    "check_exposure",
    "check_heartbeats",
    "check_marks",
    "check_stops",
    "halt_code",
    "load_watchdog_config",
    "load_watchdog_file",
    "operator_reason",
    "reason_for",
]
