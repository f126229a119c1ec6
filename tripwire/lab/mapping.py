"""The expert's class for each labelled event kind: the lab's ground truth for triage.

Written down before any analyst was scored against it, from what each event *is* in the
generators (:mod:`tripwire.feeds.graded_events`, :mod:`tripwire.feeds.scenario`) and what a
desk analyst would call it from the tape and the headlines -- not from what any analyst
answers. The rules analyst's rules may be changed only from what the lab shows against this
table, never this table to fit the rules.

=====================  ======================  =============================================
event kind             expert's class          why
=====================  ======================  =============================================
flash_crash            LIQUIDATION_CASCADE     a sudden deep fall on one-sided selling that
                                               mostly recovers, with no headline: on crypto
                                               venues that is stops and liquidations being
                                               run. The generator's shape is a fast drop in
                                               steps and a partial rebound. It is not a data
                                               error (real trades print all the way down) and
                                               not manipulation (no run-up came before it).
pump_and_dump          MANIPULATION            a symbol-only run-up on thin, one-sided buying
                                               and then a dump the market did not share: the
                                               textbook pattern the class names. A "soaring
                                               on social media" headline can come with it;
                                               it explains the buying, not the price.
liquidation_cascade    LIQUIDATION_CASCADE     forced selling in steps, volume rising with
                                               each leg; the class is named after it, and a
                                               headline, when there is one, reports the
                                               liquidations (it is not the cause).
news_shock             NEWS_DRIVEN             a jump at the time of a headline about the
                                               symbol, which the market keeps: news moved it.
fat_finger             DATA_ERROR              one print far off the market with the next
                                               trades back at the old price: nothing to trade
                                               and nothing the market believed. For a trader
                                               a single erroneous print and a bad tick are
                                               the same thing: do not act on the price.
volume_burst           TECHNICAL_SPIKE         heavy two-sided volume with no lasting move
                                               and no news: real activity (a block, an
                                               algorithm), unexplained, not tradeable alone.
slow_trend             TECHNICAL_SPIKE         a drift over hours: a trip on it is the
                                               detector seeing a real but unexplained move.
outage                 DATA_ERROR              the feed went silent and resumed: whatever
                                               tripped is about the data, not the market.
(no event)             IGNORE                  a trip that matches no labelled event is a
                                               false trip on background noise (the regimes'
                                               drift and the heavy tails are unlabelled on
                                               purpose): the right call is to do nothing.
=====================  ======================  =============================================

TECHNICAL_SPIKE is also an acceptable answer for a trip that matches no event (real but
unexplained moves of the background): :data:`NO_EVENT_ACCEPTABLE` holds both, and the
lab's triage table reports "no event" incidents both strictly (expert = IGNORE) and with
either counted right, so neither reading hides the other.
"""

from __future__ import annotations

from types import MappingProxyType

from tripwire.model import EventKind

CLASSES: tuple[str, ...] = (
    "TECHNICAL_SPIKE", "NEWS_DRIVEN", "MANIPULATION", "LIQUIDATION_CASCADE", "DATA_ERROR",
    "IGNORE",
)  # fmt: skip
NO_EVENT = "no_event"  # the label of an incident that matches no labelled event
NO_EVENT_CLASS = "IGNORE"
NO_EVENT_ACCEPTABLE: frozenset[str] = frozenset({"IGNORE", "TECHNICAL_SPIKE"})

EXPERT_CLASS: MappingProxyType[str, str] = MappingProxyType({
    EventKind.FLASH_CRASH.value: "LIQUIDATION_CASCADE",
    EventKind.PUMP_AND_DUMP.value: "MANIPULATION",
    EventKind.LIQUIDATION_CASCADE.value: "LIQUIDATION_CASCADE",
    EventKind.NEWS_SHOCK.value: "NEWS_DRIVEN",
    EventKind.FAT_FINGER.value: "DATA_ERROR",
    EventKind.VOLUME_BURST.value: "TECHNICAL_SPIKE",
    EventKind.SLOW_TREND.value: "TECHNICAL_SPIKE",
    EventKind.OUTAGE.value: "DATA_ERROR",
    NO_EVENT: NO_EVENT_CLASS,
})


def expert_class(kind: str | EventKind | None) -> str:
    """The expert's class of an event kind (``None`` or ``"no_event"``: IGNORE).

    >>> expert_class(EventKind.FAT_FINGER), expert_class(None)
    ('DATA_ERROR', 'IGNORE')
    >>> expert_class("meteor")
    Traceback (most recent call last):
    ...
    ValueError: no expert class for event kind 'meteor' (known: flash_crash, pump_and_dump, \
liquidation_cascade, news_shock, fat_finger, volume_burst, slow_trend, outage, no_event)
    """
    key = NO_EVENT if kind is None else str(getattr(kind, "value", kind))
    try:
        return EXPERT_CLASS[key]
    except KeyError:
        raise ValueError(f"no expert class for event kind {key!r} (known: "
                         f"{', '.join(EXPERT_CLASS)})") from None


def table_markdown() -> str:
    """The table as markdown rows (for the report and the README)."""
    rows = ["| event kind | expert's class |", "|---|---|"]
    rows += [f"| {k} | {v} |" for k, v in EXPERT_CLASS.items()]
    return "\n".join(rows)
