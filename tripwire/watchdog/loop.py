"""The watchdog loop: poll the invariants, HALT on a breach, never resume.

On a breach the watchdog sets the halt flag (the store NOTIFYs ``tripwire_halt``), cancels
open orders, flattens positions when configured, and alerts (a structured log line and an
optional webhook POST). While the flag is up it sets nothing again and alerts nothing again,
but keeps cancelling any open order that appears. When the database is unreachable it cannot
set the flag: it still cancels orders and alerts (readers of an unreadable flag halt anyway),
retries every ``outage_retry_s``, and the first thing it does when the database answers again
is set the flag to ``database_outage: <how long, first error>`` -- before reading anything --
so trading resumes only after an operator's acknowledgement names that code.
Only an operator resumes; this module has no code path that clears the flag.

It also notices components that report a restart in their heartbeat detail
(``restarts=<n>``, e.g. a detector shard actor Ray restarted): one log line and an alert per
new restart, counted in ``stats["restarts_seen"]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from tripwire.model import NS_PER_SECOND, Clock
from tripwire.watchdog.checks import (
    AccountSnapshot,
    check_drawdown,
    check_exposure,
    check_heartbeats,
    check_marks,
    check_stops,
)
from tripwire.watchdog.config import WatchdogConfig
from tripwire.watchdog.control import ExecutionControl
from tripwire.watchdog.reasons import (
    ACCOUNT_UNREADABLE,
    DATABASE_OUTAGE,
    DATABASE_UNREACHABLE,
    Breach,
    reason_for,
)

log = logging.getLogger("tripwire.watchdog")
WATCHDOG = "watchdog"  # set_by of the halts it sets, and its own heartbeat component
MAX_DETAIL = 300  # characters of an exception kept in a breach detail
RESTARTS = re.compile(r"\brestarts=(\d+)\b")  # in a heartbeat's detail

Alert = Callable[[dict[str, Any]], Awaitable[None]]


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_DETAIL]


class _Outage:
    """The database as this watchdog saw it unreachable: since when, how often, why first."""

    def __init__(self, now_ns: int, error: str, halted_before: str) -> None:
        self.since_ns, self.error, self.checks = now_ns, error, 1
        self.halted_before = halted_before  # the flag's reason when last read, "" if clear

    def reason(self, now_ns: int) -> str:
        seconds = max(0, now_ns - self.since_ns) / NS_PER_SECOND
        text = (f"{DATABASE_OUTAGE}: the database was unreachable for {seconds:.1f} s "
                f"({self.checks} check(s)); first error: {self.error}")
        if self.halted_before:
            text += f"; halted before it: {self.halted_before}"
        return text[:2 * MAX_DETAIL]


class Alerter:
    """A structured log line per alert, plus a webhook POST when configured.

    Webhook failures are counted in ``stats`` and logged, never raised: an alert channel
    being down must not stop the watchdog from halting.
    """

    def __init__(self, webhook_url: str | None = None, timeout_s: float = 5.0) -> None:
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self.stats: Counter[str] = Counter()

    async def __call__(self, event: dict[str, Any]) -> None:
        self.stats["alerts"] += 1
        log.warning(json.dumps({"event": "watchdog_alert", **event}, sort_keys=True))
        if not self.webhook_url:
            return
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(self.webhook_url, json=event)
            if response.status_code >= 300:
                raise RuntimeError(f"HTTP {response.status_code}")
            self.stats["webhook_sent"] += 1
        except Exception as exc:  # any failure of the channel is counted, never raised
            self.stats["webhook_failures"] += 1
            log.error(json.dumps({"event": "watchdog_webhook_failed", "error": _error(exc)}))


class Watchdog:
    """``store`` is a DecisionStore (read_halt, set_halt, heartbeats, heartbeat); ``control``
    an ExecutionControl or None (then only heartbeats and the database are checked)."""

    def __init__(self, store: Any, control: ExecutionControl | None, config: WatchdogConfig,
                 clock: Clock, alert: Alert | None = None) -> None:
        self.store = store
        self.control = control
        self.config = config
        self.clock = clock
        self.alert = alert or Alerter(config.webhook_url, config.webhook_timeout_s)
        self.stats: Counter[str] = Counter()
        self._alerted: frozenset[str] = frozenset()  # codes of the episode already alerted
        # Flattened in this episode already: with the database down every check "halts" again,
        # and a second round of closing orders would flip the positions it meant to close.
        self._flattened = False
        self._outage: _Outage | None = None  # seen unreachable, outage halt not yet written
        self._last_reason = ""  # the halt reason at the last successful read
        self._restarts: dict[str, int] = {}  # component -> restarts=<n> last seen

    @property
    def in_outage(self) -> bool:
        """True from the first failed database call until the outage halt is written."""
        return self._outage is not None

    def _note_outage(self, now: int, exc: BaseException) -> None:
        if self._outage is None:
            self._outage = _Outage(now, _error(exc), self._last_reason)
            self.stats["outages"] += 1
            log.error(json.dumps({"event": "watchdog_database_unreachable",
                                  "error": self._outage.error}))
        else:
            self._outage.checks += 1

    async def _end_outage(self, now: int) -> None:
        """The database answers again: set the outage halt before anything else reads or
        writes (raises if it is still down, and the outage goes on)."""
        outage = self._outage
        assert outage is not None
        reason = outage.reason(now)
        await self.store.set_halt(reason, WATCHDOG, now)
        self._outage = None
        self.stats["halts"] += 1
        self.stats["outage_halts"] += 1
        await self._send({"action": "halt", "reason": reason, "ts_ns": now, "cancelled": 0,
                          "flattened": 0, "breaches": [{"code": DATABASE_OUTAGE,
                                                        "detail": reason}]})

    async def _control(self, method: str) -> Any:
        # Blocking adapters (HTTP, ccxt) run in a thread; the paper broker is pure arithmetic.
        fn = getattr(self.control, method)
        if getattr(self.control, "blocking", True):
            return await asyncio.to_thread(fn)
        return fn()

    async def _database(self, now: int) -> tuple[Any, dict[str, tuple[int, str]], Breach | None]:
        try:
            if self._outage is not None:
                await self._end_outage(now)
            halt = await self.store.read_halt()
            beats = await self.store.heartbeats()
            await self.store.heartbeat(WATCHDOG, now, "alive")
        except Exception as exc:  # whatever the driver raises, the flag is unusable
            self._note_outage(now, exc)
            return None, {}, Breach(DATABASE_UNREACHABLE, _error(exc))
        self._last_reason = halt.reason if halt is not None and halt.halted else ""
        await self._restarted(beats, now)
        return halt, beats, None

    async def _restarted(self, beats: dict[str, tuple[int, str]], now: int) -> None:
        """Log and alert each component restart its heartbeat reports (``restarts=<n>``)."""
        for component, (_ts, detail) in sorted(beats.items()):
            m = RESTARTS.search(detail or "")
            if m is None:
                continue
            n, seen = int(m.group(1)), self._restarts.get(component)
            self._restarts[component] = n
            if n <= (seen or 0):  # nothing new (a first sighting of restarts=0 included)
                continue
            self.stats["restarts_seen"] += n - (seen or 0)
            event = {"action": "component_restarted", "component": component,
                     "restarts": n, "detail": detail, "ts_ns": now}
            log.warning(json.dumps({"event": "watchdog_component_restarted", **event},
                                   sort_keys=True))
            await self._send(event)

    async def _account(self) -> tuple[AccountSnapshot | None, Breach | None]:
        if self.control is None:
            return None, None
        try:
            return await self._control("snapshot"), None
        except Exception as exc:  # fail closed: an account we cannot read is a breach
            return None, Breach(ACCOUNT_UNREADABLE, _error(exc))

    def _evaluate(self, beats: dict[str, tuple[int, str]], snap: AccountSnapshot | None,
                  now: int, *, heartbeats: bool) -> list[Breach]:
        c = self.config
        found = []
        if heartbeats:
            found.append(check_heartbeats(beats, c.heartbeats, c.heartbeat_max_age_ns, now))
        if snap is not None:
            found += [check_drawdown(snap, c.max_drawdown),
                      check_exposure(snap, c.max_gross_exposure),
                      check_marks(snap, c.mark_max_age_ns)]
            if c.require_stops:
                found.append(check_stops(snap))
        return [b for b in found if b is not None]

    async def check_once(self) -> list[Breach]:
        """One pass over every invariant; acts on what it finds; returns the breaches."""
        now = self.clock.now_ns()
        self.stats["checks"] += 1
        halt, beats, db_breach = await self._database(now)
        snap, account_breach = await self._account()
        breaches = [b for b in (db_breach, account_breach) if b is not None]
        # Without the database there are no heartbeats to judge; the account still counts.
        breaches += self._evaluate(beats, snap, now, heartbeats=db_breach is None)
        self.stats["breaches"] += len(breaches)
        already = halt is not None and halt.halted
        if breaches and not already:
            await self._halt(breaches, now, database_up=db_breach is None)
        elif already or breaches:
            await self._cancel_appearing(snap)
        if not breaches:
            self._alerted = frozenset()
            if halt is not None and not halt.halted:  # resumed by an operator: a new episode
                self._flattened = False
        return breaches

    async def _halt(self, breaches: list[Breach], now: int, *, database_up: bool) -> None:
        reason = reason_for(breaches)
        flag_set = False
        if database_up:
            try:
                await self.store.set_halt(reason, WATCHDOG, now)
                flag_set = True
                self.stats["halts"] += 1
            except Exception as exc:  # lost between the read and the write
                self._note_outage(now, exc)
                breaches = [*breaches, Breach(DATABASE_UNREACHABLE, _error(exc))]
        cancelled = await self._act("cancel_open_orders")
        flattened = 0
        if self.config.flatten_on_halt and not self._flattened:
            self._flattened = True
            flattened = await self._act("flatten")
        codes = frozenset(b.code for b in breaches)
        if codes != self._alerted:
            self._alerted = codes
            await self._send({"action": "halt" if flag_set else "halt_flag_unwritable",
                              "reason": reason, "ts_ns": now, "cancelled": cancelled,
                              "flattened": flattened,
                              "breaches": [{"code": b.code, "detail": b.detail}
                                           for b in breaches]})

    async def _cancel_appearing(self, snap: AccountSnapshot | None) -> None:
        # Halted already (or the flag is unreadable): no new halt, no new alert, but an order
        # that appeared since must not live. No snapshot (unreadable account) -> cancel anyway.
        if self.control is not None and (snap is None or snap.open_orders > 0):
            await self._act("cancel_open_orders")

    async def _act(self, method: str) -> int:
        if self.control is None:
            return 0
        try:
            n = int(await self._control(method))
        except Exception as exc:  # keep going: the flag is up, an alert says what failed
            self.stats[f"{method}_failures"] += 1
            log.error(json.dumps({"event": f"watchdog_{method}_failed", "error": _error(exc)}))
            return 0
        self.stats["cancelled" if method == "cancel_open_orders" else "flattened"] += n
        return n

    async def _send(self, event: dict[str, Any]) -> None:
        self.stats["alerts"] += 1
        try:
            await self.alert(event)
        except Exception as exc:  # an alert hook must never stop the watchdog
            self.stats["alert_failures"] += 1
            log.error(json.dumps({"event": "watchdog_alert_failed", "error": _error(exc)}))

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``interval_s`` until ``stop`` is set. Never resumes."""
        while not stop.is_set():
            try:
                breaches = await self.check_once()
            except Exception as exc:  # a bug in one pass must not end the watch
                self.stats["errors"] += 1
                log.error(json.dumps({"event": "watchdog_check_failed", "error": _error(exc)}))
            else:
                log.info(json.dumps({"event": "watchdog_check", "checks": self.stats["checks"],
                                     "breaches": [b.reason for b in breaches]}))
            # While the database is down, look again sooner: the outage halt must be written
            # as soon as it answers, before a decision can read a clear flag.
            wait = self.config.interval_s
            if self._outage is not None:
                wait = min(wait, self.config.outage_retry_s)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass
