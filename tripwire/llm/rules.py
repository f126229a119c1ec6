"""The offline rules analyst: deterministic answers from an incident's numbers and headlines.

It is the embedded default when no API key is configured and the last fallback route of the
router, and it says so: every answer has ``source: "rules"`` and a reasoning that starts
with ``[rules]`` and names the rule that fired. It costs nothing (zero tokens) and gives the
same answer for the same incident, bit for bit.

Triage is an ordered list of rules over the facts of :class:`~tripwire.incident.Incident`
(first match wins):

1. ``spike-and-back`` -> DATA_ERROR: the previous print went far off and this one came back;
2. ``feed-gap`` -> DATA_ERROR: the trade came after a silence of minutes, so the move
   happened while the feed saw nothing;
3. ``hard-news`` -> NEWS_DRIVEN: an unhedged headline about the symbol (hack, exploit,
   listing, delisting, SEC, ETF, halt, partnership, ...) in the window and a real move;
   liquidation and pump headlines count as evidence for rules 6 and 5/7 instead;
4. ``single-print`` -> DATA_ERROR: one print 5%+ away with a flat run before, no volume
   surge and no news;
5. ``run-up-reversal`` -> MANIPULATION: a sharp fall right after a run-up the market did
   not share (a pump and its dump);
6. ``forced-selling`` -> LIQUIDATION_CASCADE: a sharp fall (0.5%+ within ten ticks, or a
   strong downward return trip) with no run-up before it;
7. ``pump-in-progress`` -> MANIPULATION: a rise the market did not share, with no news, on
   buying: a volume surge, a headline that reports the buying, or a run-up of 3%+ over the
   context horizon on volume above the window's normal (a drift trip during the pump);
8. ``unexplained-jump`` -> TECHNICAL_SPIKE: a sharp rise with no news;
9. ``quiet-price`` -> TECHNICAL_SPIKE when strong, IGNORE when barely over the threshold:
   the price did not move (a volume trip, or a return trip within the noise);
10. ``fallback`` -> TECHNICAL_SPIKE.

Confidence grows with the evidence behind the rule (bigger move, more metrics tripped,
matching news direction, ...) and never exceeds 0.95: rules are not certain.

The strategist rules HOLD unless a confident NEWS_DRIVEN verdict, headline direction and
price move all agree, and then never propose more than :data:`RULES_MAX_SIZE` of the
maximum position, with a stop. The double-checker rules re-triage the raw facts (blind to
the strategist's rationale) and disagree with any trade the facts do not support.

>>> import asyncio
>>> from tripwire.llm.base import LLMRequest, Message
>>> from tripwire.llm.schemas import TriageVerdict
>>> inc = {"symbol": "ARBUSDT", "ts_ns": 0, "metric": "RETURN", "z": -616.2, "value": -0.23,
...        "tripped": {"RETURN": -616.2, "PRICE": -104.0},
...        "recent": {"ticks": 250, "span_s": 700.0, "ret_1_pct": -20.5, "ret_10_pct": -20.5}}
>>> req = LLMRequest(role="triage-analyst", system="", messages=(Message("user", "?"),),
...                  schema=TriageVerdict, context=inc)
>>> out = asyncio.run(RulesProvider().complete(req, timeout_s=1.0))
>>> out.data["classification"], out.source, out.usage.total, out.data["reasoning"][:20]
('DATA_ERROR', 'rules', 0, '[rules] single-print')
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from tripwire.incident import Incident
from tripwire.llm.base import LLMRequest, ProviderError, ProviderResult, Usage
from tripwire.llm.schemas import (
    Action,
    CheckVerdict,
    Classification,
    DoubleCheck,
    StrategistProposal,
    TriageVerdict,
)

MODEL = "rules-v1"
RULES_MAX_SIZE = 0.10  # of the maximum position: the rules never propose more
TRADE_MIN_CONFIDENCE = 0.75  # the verdict's confidence below which the rules HOLD
CHECK_MAX_SIZE = 0.25  # the double-checker's cap on any proposal's size
# A marketable limit: up to this much worse than the trip price (fills in a fast market,
# but never at any price, as a market order would).
MARKETABLE = 0.0025
MAX_CONFIDENCE = 0.95

# Thresholds, in percent unless named otherwise; why each value: see the rule using it.
SHARP_MOVE = 0.5  # within ten ticks: beyond the bid-ask bounce and ordinary noise
BAD_PRINT_MOVE = 5.0  # one tick this far off is a data problem unless something explains it
SPIKE_BACK_MOVE = 3.0
RUN_UP = 3.0  # a symbol-only rise over the horizon that a sharp drop makes suspicious
PUMP_DRIFT = 0.75  # a symbol-only rise that, with a volume surge, looks like a pump
VOLUME_SURGE = 3.0  # last bucket / window mean bucket
# Trading well above its normal, short of a surge: with a run-up of RUN_UP+ over the
# horizon it is the buying behind the rise (a pump's run-up trips the drift statistic
# minutes before any single volume bucket surges).
ELEVATED_VOLUME = 2.0
FEED_GAP_S = 60.0
FEED_GAP_RATIO = 20.0  # the last gap over the symbol's median gap
STRONG_Z = {"RETURN": 20.0, "PRICE": 12.0, "VOLUME": 12.0}  # clearly above the defaults

_HEDGE = re.compile(
    r"\b(unconfirmed|rumou?rs?|said to|sources? say|report says|unverified|circulates|"
    r"looking into|spotted|reportedly|allegedly|speculat\w*)",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"\b(hack\w*|exploit\w*|halts?|halted|suspend\w*|delist\w*|lawsuit|sue[sd]?|charge[sd]|"
    r"stall\w*|bug|breach\w*|security incident|bankrupt\w*|insolven\w*|outage|bans?|banned|"
    r"fraud|probe|investigat\w*|depeg\w*)\b",
    re.IGNORECASE,
)
_POSITIVE = re.compile(
    r"\b(approves?|approved|approval|launch\w*|listing|lists|to list|partner\w*|purchase\w*|"
    r"buys|acquir\w*|acquisition|staking|inflows?|upgrade[sd]?|integrat\w*|adopt\w*)\b",
    re.IGNORECASE,
)
_HARD = re.compile(r"\b(SEC|ETFs?|CFTC|DOJ|regulators?)\b")
_LIQUIDATION = re.compile(
    r"(liquidat\w*|leveraged (longs|shorts)|unwind\w*|forced selling|margin call)", re.IGNORECASE
)
_PUMP = re.compile(
    r"(soar\w*|social media|buzz|chase rally|thin liquidity|volume spikes|to the moon|pump\w*)",
    re.IGNORECASE,
)


# ----------------------------------------------------------------------------- evidence


@dataclass(frozen=True, slots=True)
class NewsRead:
    """What the headlines about the symbol (and the market) say, as the rules read them."""

    hard: tuple[str, ...] = ()  # unhedged headlines with a market-moving keyword
    hedged: tuple[str, ...] = ()  # the same, but rumour / unconfirmed
    liquidation: tuple[str, ...] = ()
    pump: tuple[str, ...] = ()
    market_hard: tuple[str, ...] = ()  # market-wide, unhedged, market-moving
    polarity: int = 0  # +1 good news, -1 bad news, 0 mixed or none (hard headlines only)
    market_polarity: int = 0


def _polarity(text: str) -> int:
    neg, pos = bool(_NEGATIVE.search(text)), bool(_POSITIVE.search(text))
    return 0 if neg == pos else (1 if pos else -1)


def _sum_polarity(headlines: tuple[str, ...]) -> int:
    total = sum(_polarity(h) for h in headlines)
    return (total > 0) - (total < 0)


def read_news(incident: Incident) -> NewsRead:
    """Sort the incident's headlines into the kinds of evidence the rules use."""
    hard, hedged, liq, pump, market = [], [], [], [], []
    for h in incident.news:
        text = h.headline
        moving = bool(_NEGATIVE.search(text) or _POSITIVE.search(text) or _HARD.search(text))
        if not h.about_symbol:
            if moving and not _HEDGE.search(text):
                market.append(text)
            continue
        if _LIQUIDATION.search(text):
            liq.append(text)
        elif moving:  # before the pump words: "exploit rumour on social media" is a rumour
            (hedged if _HEDGE.search(text) else hard).append(text)
        elif _PUMP.search(text):
            pump.append(text)
    return NewsRead(
        tuple(hard), tuple(hedged), tuple(liq), tuple(pump), tuple(market),
        _sum_polarity(tuple(hard)), _sum_polarity(tuple(market)),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Evidence:
    """The numbers the rules decide on (percent unless named otherwise)."""

    move: float  # over the last ten ticks (or fewer), ending at the trip
    jump: float  # the tripping tick alone
    prev: float | None  # the tick before it
    concentration: float  # |jump| / |move|: 1 means the whole move is one print
    gap_s: float | None
    gap_ratio: float | None
    volume: float | None  # last volume bucket / window mean
    idio: float | None  # the symbol's move over the horizon, net of the market
    prior: float | None  # ... before the last ten ticks: the run-up, if any
    market: float | None
    metrics: frozenset[str]
    strong: bool  # some tripped metric is clearly over its default threshold
    news: NewsRead = field(default_factory=NewsRead)


def evidence(incident: Incident) -> Evidence:
    r, m = incident.recent, incident.market
    jump = r.ret_1_pct or 0.0
    move = r.ret_10_pct if r.ret_10_pct is not None else jump
    ratio = None
    if r.last_gap_s is not None and r.median_gap_s is not None:
        ratio = r.last_gap_s / max(r.median_gap_s, 0.05)  # 50 ms floor: bursts are ~0 gaps
    market = None
    if m is not None:
        market = m.market_move_pct
        if market is None and incident.symbol != m.reference_symbol:
            market = m.reference_move_pct  # the configured reference, when it is another
    own = m.symbol_move_pct if m is not None else None
    if own is None:
        own = r.ret_all_pct
    idio = None if own is None else own - (market or 0.0)
    return Evidence(
        move=move,
        jump=jump,
        prev=r.ret_prev_pct,
        concentration=abs(jump) / max(abs(move), 1e-9),
        gap_s=r.last_gap_s,
        gap_ratio=ratio,
        volume=r.volume_vs_window,
        idio=idio,
        prior=None if idio is None else idio - move,
        market=market,
        metrics=frozenset(incident.tripped),
        strong=any(abs(z) >= STRONG_Z[k] for k, z in incident.tripped.items()),
        news=read_news(incident),
    )


# ----------------------------------------------------------------------------- triage


@dataclass(frozen=True, slots=True)
class _Call:
    rule: str
    classification: Classification
    confidence: float
    why: str
    factors: tuple[str, ...]


def _conf(base: float, *bonuses: tuple[bool, float]) -> float:
    c = base + sum(b for ok, b in bonuses if ok)
    return round(min(MAX_CONFIDENCE, max(0.05, c)), 2)


def _p(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2f}%"


def _vol(e: Evidence) -> str:
    return "volume n/a" if e.volume is None else f"volume {e.volume:.1f}x the window mean"


def _surge(e: Evidence) -> bool:
    return "VOLUME" in e.metrics or (e.volume is not None and e.volume >= VOLUME_SURGE)


def _spike_and_back(inc: Incident, e: Evidence) -> _Call | None:
    if e.prev is None or abs(e.prev) < SPIKE_BACK_MOVE or e.jump * e.prev >= 0:
        return None
    if abs(e.prev + e.jump) > 0.25 * abs(e.prev):
        return None
    return _Call(
        "spike-and-back", Classification.DATA_ERROR, _conf(0.8, (abs(e.prev) >= 8, 0.1)),
        f"the previous print was {_p(e.prev)} off and this one came back {_p(e.jump)}: "
        "one bad print, not the market",
        (f"previous tick {_p(e.prev)}", f"this tick {_p(e.jump)}", "net move near zero"),
    )  # fmt: skip


def _feed_gap(inc: Incident, e: Evidence) -> _Call | None:
    if e.gap_s is None or e.gap_s < FEED_GAP_S or (e.gap_ratio or 0) < FEED_GAP_RATIO:
        return None
    return _Call(
        "feed-gap", Classification.DATA_ERROR,
        _conf(0.7, (e.gap_ratio >= 100, 0.1), (not e.news.hard, 0.05)),
        f"{inc.symbol} traded after {e.gap_s:.0f}s of silence ({e.gap_ratio:.0f}x its median "
        f"gap); the {_p(e.jump)} move happened while the feed saw nothing",
        (f"gap before the trade {e.gap_s:.0f}s", f"{e.gap_ratio:.0f}x the median gap",
         f"move {_p(e.jump)} across the gap"),
    )  # fmt: skip


# (base confidence, cap): a rumour or market-wide news explains one symbol's move less well
# than confirmed news about that symbol.
_NEWS_WEIGHT = {"own": (0.6, 1.0), "unconfirmed": (0.45, 0.6), "market-wide": (0.5, 0.75)}


def _hard_news(inc: Incident, e: Evidence) -> _Call | None:
    n = e.news
    big = max(abs(e.move), abs(e.jump))
    if n.hard and big >= SHARP_MOVE:
        heads, pol, kind = n.hard, n.polarity, "own"
    elif n.hedged and big >= 2.0:
        heads, pol, kind = n.hedged, _sum_polarity(n.hedged), "unconfirmed"
    elif n.market_hard and e.market is not None and abs(e.market) >= 1.0 and big >= SHARP_MOVE:
        heads, pol, kind = n.market_hard, n.market_polarity, "market-wide"
    else:
        return None
    direction = (e.move > 0) - (e.move < 0)
    agrees, clash = pol != 0 and pol == direction, pol != 0 and pol == -direction
    base, cap = _NEWS_WEIGHT[kind]
    scope = f"about {inc.base_asset}" if kind == "own" else kind
    conf = min(cap, _conf(base, (agrees, 0.15), (big >= 2.0, 0.1), (len(heads) > 1, 0.05),
                          (clash, -0.25), (e.strong, 0.05)))  # fmt: skip
    tone = {1: "good news", -1: "bad news", 0: "news"}[pol]
    return _Call(
        "hard-news", Classification.NEWS_DRIVEN, conf,
        f"{len(heads)} headline(s) {scope} ({tone}) before a {_p(e.move)} move"
        + ("; the price moved against the headline" if clash else ""),
        (*(f"headline: {h}"[:200] for h in heads[:3]), f"move {_p(e.move)} over ten ticks"),
    )  # fmt: skip


def _single_print(inc: Incident, e: Evidence) -> _Call | None:
    if abs(e.jump) < BAD_PRINT_MOVE or e.concentration < 0.8:
        return None
    if (e.prior is not None and abs(e.prior) >= 3.0) or (e.volume or 0.0) >= VOLUME_SURGE:
        return None
    return _Call(
        "single-print", Classification.DATA_ERROR,
        _conf(0.7, (abs(e.jump) >= 10, 0.1), (len(e.metrics) > 1, 0.05),
              (e.prior is not None, 0.05)),
        f"{inc.symbol} printed {_p(e.jump)} in one tick with a flat run before (prior move "
        f"{_p(e.prior)}), {_vol(e)} and no confirmed news about {inc.base_asset}: a bad print",
        (f"one-tick move {_p(e.jump)}", f"prior move {_p(e.prior)}", _vol(e),
         "no confirmed news"),
    )  # fmt: skip


def _falling_hard(inc: Incident, e: Evidence) -> bool:
    """A sharp fall: 0.5%+ within ten ticks, or a strong downward return trip (on a
    quiet major, 0.4% in one print is a z of 50)."""
    z = inc.tripped.get("RETURN", 0.0)
    return e.move <= -SHARP_MOVE or (z <= -STRONG_Z["RETURN"] and min(e.move, e.jump) < 0)


def _run_up_reversal(inc: Incident, e: Evidence) -> _Call | None:
    pumped = e.prior is not None and e.prior >= RUN_UP
    if not _falling_hard(inc, e) or not (pumped or (e.news.pump and (e.prior or 0) >= 1.5)):
        return None
    return _Call(
        "run-up-reversal", Classification.MANIPULATION,
        _conf(0.6, (e.prior is not None and e.prior >= 10, 0.1), (bool(e.news.pump), 0.1),
              (_surge(e), 0.05), (e.market is not None and abs(e.market) < 1, 0.05)),
        f"{inc.symbol} fell {_p(e.move)} right after a {_p(e.prior)} run-up the market did "
        "not share: a pump and its dump",
        (f"run-up {_p(e.prior)} net of the market", f"reversal {_p(e.move)}",
         *(f"headline: {h}"[:200] for h in e.news.pump[:2])),
    )  # fmt: skip


def _forced_selling(inc: Incident, e: Evidence) -> _Call | None:
    liq = bool(e.news.liquidation)
    if not (_falling_hard(inc, e) or (liq and e.move <= -0.3)):
        return None
    market_down = e.market is not None and e.market <= -0.5
    return _Call(
        "forced-selling", Classification.LIQUIDATION_CASCADE,
        _conf(0.55, (liq, 0.15), (inc.recent.down_run >= 3, 0.1), (_surge(e), 0.05),
              (market_down, 0.05), (e.move <= -1.0, 0.05)),
        f"{inc.symbol} fell {_p(e.move)} within ten ticks "
        f"(RETURN z={inc.tripped.get('RETURN', 0.0):.0f}) with no headline explaining it"
        + (" and liquidations reported" if liq else "")
        + ("; the market is falling too" if market_down else ""),
        (f"fall {_p(e.move)} over ten ticks", f"{inc.recent.down_run} falling prints in a row",
         _vol(e), *(f"headline: {h}"[:200] for h in e.news.liquidation[:2])),
    )  # fmt: skip


def _buying(e: Evidence) -> str | None:
    """What shows the buying behind a symbol-only rise (None: nothing does).

    The expert's pump (:mod:`tripwire.lab.mapping`) is a symbol-only run-up on thin,
    one-sided buying; a "soaring on social media" headline explains the buying. A volume
    surge shows it; so does a headline reporting it; and so does volume merely above the
    window's normal when the rise is a run-up (RUN_UP+ over the context horizon, a pace a
    trend over hours does not reach in 15 minutes). The last is what a drift trip sees:
    it fires during the run-up, before any single volume bucket surges.
    """
    if _surge(e):
        return f"on a volume surge ({_vol(e)})"
    if e.news.pump:
        return "on buying the headlines report"
    if (e.idio or 0.0) >= RUN_UP and (e.volume or 0.0) >= ELEVATED_VOLUME:
        return f"in a run-up on volume above its normal ({_vol(e)})"
    return None


def _pump_in_progress(inc: Incident, e: Evidence) -> _Call | None:
    # Not falling: the ten-tick move of a pump in progress is bid-ask noise around zero.
    rising = e.idio is not None and e.idio >= PUMP_DRIFT and e.move > -SHARP_MOVE / 2
    how = _buying(e) if rising else None
    if how is None:
        return None
    return _Call(
        "pump-in-progress", Classification.MANIPULATION,
        _conf(0.45, (e.idio >= 2.0, 0.1), (bool(e.news.pump), 0.15), (not _surge(e), -0.05)),
        f"{inc.symbol} rose {_p(e.idio)} net of the market {how} with no news to explain "
        "it: a possible pump",
        (f"rise {_p(e.idio)} net of the market", _vol(e), "no hard news",
         *(f"headline: {h}"[:200] for h in e.news.pump[:2])),
    )  # fmt: skip


def _unexplained_jump(inc: Incident, e: Evidence) -> _Call | None:
    if e.move < SHARP_MOVE:
        return None
    return _Call(
        "unexplained-jump", Classification.TECHNICAL_SPIKE, _conf(0.5, (e.strong, 0.05)),
        f"{inc.symbol} rose {_p(e.move)} within ten ticks with no headline and no sign of a "
        "bad print or a pump",
        (f"rise {_p(e.move)} over ten ticks", _vol(e), "no news"),
    )  # fmt: skip


def _quiet_price(inc: Incident, e: Evidence) -> _Call | None:
    quiet = abs(e.move) < SHARP_MOVE and (e.idio is None or abs(e.idio) < PUMP_DRIFT)
    if not quiet:
        return None
    strong = e.strong or (e.volume is not None and e.volume >= 5.0)
    trips = ", ".join(f"{k} z={z:.1f}" for k, z in inc.tripped.items())
    if strong:
        return _Call(
            "quiet-price",
            Classification.TECHNICAL_SPIKE,
            _conf(0.55, (_surge(e), 0.05)),
            f"{trips} but the price barely moved ({_p(e.move)}): heavy trading, no story",
            (trips, f"move {_p(e.move)}", _vol(e)),
        )
    return _Call(
        "quiet-price",
        Classification.IGNORE,
        _conf(0.6, (len(e.metrics) == 1, 0.05)),
        f"{trips}, just over the threshold, and the price barely moved ({_p(e.move)})",
        (trips, f"move {_p(e.move)}", "no news"),
    )


def _fallback(inc: Incident, e: Evidence) -> _Call:
    return _Call(
        "fallback",
        Classification.TECHNICAL_SPIKE,
        0.4,
        f"no rule explains the trip ({_p(e.move)} over ten ticks, {_vol(e)})",
        (f"move {_p(e.move)}", _vol(e)),
    )


_TRIAGE_RULES: tuple[Callable[[Incident, Evidence], _Call | None], ...] = (
    _spike_and_back, _feed_gap, _hard_news, _single_print, _run_up_reversal,
    _forced_selling, _pump_in_progress, _unexplained_jump, _quiet_price,
)  # fmt: skip


def triage(incident: Incident) -> TriageVerdict:
    """The rules' verdict on one incident (the first rule that fires decides)."""
    e = evidence(incident)
    call = next((c for rule in _TRIAGE_RULES if (c := rule(incident, e))), None)
    call = call or _fallback(incident, e)
    return TriageVerdict(
        classification=call.classification,
        confidence=call.confidence,
        reasoning=f"[rules] {call.rule}: {call.why}"[:2000],
        key_factors=[f[:200] for f in call.factors[:8]],
        source="rules",
    )


# ----------------------------------------------------------------------------- strategist


def _hold(incident: Incident, why: str) -> StrategistProposal:
    return StrategistProposal(
        action=Action.HOLD, symbol=incident.symbol, size=0.0, limit_price=None, stop_loss=None,
        take_profit=None, rationale=f"[rules] hold: {why}", confidence=0.9, source="rules",
    )  # fmt: skip


def _sig(x: float) -> float:
    return float(f"{x:.8g}")


def propose(incident: Incident, verdict: TriageVerdict | None) -> StrategistProposal:
    """HOLD, unless a confident NEWS_DRIVEN verdict, the headlines' direction and the
    price move agree: then a small position with the move, a stop and a 2:1 target."""
    if verdict is None:
        return _hold(incident, "no valid triage verdict")
    if verdict.classification is not Classification.NEWS_DRIVEN:
        return _hold(incident, f"{verdict.classification.value}: the rules only trade clear news")
    if verdict.confidence < TRADE_MIN_CONFIDENCE:
        return _hold(incident, f"verdict confidence {verdict.confidence:.2f} is too low")
    e = evidence(incident)
    pol = e.news.polarity if e.news.hard else e.news.market_polarity
    direction = (e.move > 0) - (e.move < 0)
    if pol == 0 or pol != direction:
        return _hold(incident, "headline direction unclear or against the price move")
    price = incident.price
    if price is None or price <= 0:
        return _hold(incident, "no price for the tripping tick")
    dist = min(5.0, max(1.0, abs(e.move) * 0.5)) / 100.0  # stop: half the move, 1-5%
    buy = pol > 0
    stop = price * (1 - dist) if buy else price * (1 + dist)
    target = price * (1 + 2 * dist) if buy else price * (1 - 2 * dist)
    return StrategistProposal(
        action=Action.BUY if buy else Action.SELL,
        symbol=incident.symbol,
        size=round(RULES_MAX_SIZE * verdict.confidence, 3),
        limit_price=_sig(price * (1 + MARKETABLE if buy else 1 - MARKETABLE)),
        stop_loss=_sig(stop),
        take_profit=_sig(target),
        rationale=(
            f"[rules] follow-the-news: {'good' if buy else 'bad'} news and a {_p(e.move)} "
            f"move agree; small size, stop {dist * 100:.1f}% away, target twice that"
        ),
        confidence=round(verdict.confidence * 0.8, 2),
        source="rules",
    )


# ----------------------------------------------------------------------------- double-check


def _proposal_concerns(incident: Incident, p: StrategistProposal, own: TriageVerdict) -> list[str]:
    concerns = []
    if p.symbol != incident.symbol:
        concerns.append(f"proposal is for {p.symbol}, the incident for {incident.symbol}")
    if own.classification in (
        Classification.DATA_ERROR,
        Classification.IGNORE,
        Classification.MANIPULATION,
    ):
        concerns.append(f"the facts read as {own.classification.value}: nothing to trade")
    e = evidence(incident)
    direction = 1 if p.action is Action.BUY else -1
    if e.move * direction < 0:
        concerns.append(f"{p.action.value} against the {_p(e.move)} move")
    ref = p.limit_price or incident.price
    if ref and p.stop_loss:
        stop_pct = abs(p.stop_loss / ref - 1) * 100
        if not 0.2 <= stop_pct <= 10.0:
            concerns.append(f"stop {stop_pct:.1f}% away (outside 0.2-10%)")
    if p.limit_price and incident.price and abs(p.limit_price / incident.price - 1) > 0.02:
        concerns.append("limit price more than 2% from the tripping price")
    return concerns


def double_check(incident: Incident, proposal: StrategistProposal | None) -> DoubleCheck:
    """A blind second opinion: re-triage the facts, then judge the proposal's numbers."""
    if proposal is None:
        return DoubleCheck(
            verdict=CheckVerdict.ABSTAIN, concerns=["no valid proposal to check"],
            confidence=0.0, max_size=None, source="rules",
        )  # fmt: skip
    if proposal.action is Action.HOLD:
        return DoubleCheck(verdict=CheckVerdict.AGREE, concerns=[], confidence=0.9,
                           max_size=None, source="rules")
    own = triage(incident)
    concerns = _proposal_concerns(incident, proposal, own)
    if concerns:
        return DoubleCheck(
            verdict=CheckVerdict.DISAGREE, concerns=[c[:200] for c in concerns[:8]],
            confidence=_conf(0.7, (len(concerns) > 1, 0.1)), max_size=None, source="rules",
        )  # fmt: skip
    if own.classification is Classification.NEWS_DRIVEN:
        # Agree with the trade, but never sign more than the cap: a larger size is shrunk.
        cap = CHECK_MAX_SIZE if proposal.size > CHECK_MAX_SIZE else None
        return DoubleCheck(
            verdict=CheckVerdict.AGREE, concerns=[], confidence=round(own.confidence * 0.9, 2),
            max_size=cap, source="rules",
        )  # fmt: skip
    return DoubleCheck(
        verdict=CheckVerdict.ABSTAIN,
        concerns=[f"the facts read as {own.classification.value}; rules only back news trades"],
        confidence=0.5,
        max_size=None,
        source="rules",
    )


# ----------------------------------------------------------------------------- provider


def _optional(model: type[BaseModel], data: Any) -> Any:
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None  # an invalid upstream answer is treated as none: the rules then HOLD


def _answer_triage(incident: Incident, ctx: Mapping[str, Any]) -> BaseModel:
    return triage(incident)


def _answer_strategist(incident: Incident, ctx: Mapping[str, Any]) -> BaseModel:
    return propose(incident, _optional(TriageVerdict, ctx.get("verdict")))


def _answer_double_check(incident: Incident, ctx: Mapping[str, Any]) -> BaseModel:
    return double_check(incident, _optional(StrategistProposal, ctx.get("proposal")))


def _answer_order_flow(incident: Incident, ctx: Mapping[str, Any]) -> BaseModel:
    """The consensus panel's order-flow member: the same rules on the tape alone."""
    return triage(incident.model_copy(update={"news": (), "market": None}))


def _answer_market_context(incident: Incident, ctx: Mapping[str, Any]) -> BaseModel:
    """The panel's market-context member: the tape and the market, no headlines."""
    return triage(incident.model_copy(update={"news": ()}))


_HANDLERS: dict[str, Callable[[Incident, Mapping[str, Any]], BaseModel]] = {
    "triage-analyst": _answer_triage,
    "strategist": _answer_strategist,
    "double-checker": _answer_double_check,
    # The consensus panel (tripwire.decisions.panel): one rule set, each member on its part
    # of the facts; the news member sees the whole incident, as the triage analyst does.
    "order-flow-analyst": _answer_order_flow,
    "news-analyst": _answer_triage,
    "market-context-analyst": _answer_market_context,
}
ROLES = frozenset(_HANDLERS)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
    return f"{where}: {err.get('msg', 'invalid')} ({exc.error_count()} error(s))"


class RulesProvider:
    """The rules analyst behind the :class:`~tripwire.llm.base.Provider` protocol.

    Reads ``request.context`` (an :meth:`Incident.to_context` dict; for the strategist
    also ``verdict``, for the double-checker ``proposal``), never the prose. A role it has
    no rules for, or a context that is not an incident, is a ``bad_request`` (not worth a
    retry). ``timer`` (seconds, monotonic) is injectable for deterministic latency.
    """

    kind = "rules"

    def __init__(self, model: str = MODEL, *, timer: Callable[[], float] = time.perf_counter):
        self.model = model
        self._timer = timer

    async def complete(self, request: LLMRequest, *, timeout_s: float) -> ProviderResult:
        start = self._timer()
        handler = _HANDLERS.get(request.role)
        if handler is None:
            raise ProviderError(
                "bad_request", f"the rules analyst has no rules for role {request.role!r} "
                f"(known: {sorted(_HANDLERS)})",
            )  # fmt: skip
        try:
            incident = Incident.from_context(request.context)
        except ValidationError as exc:
            raise ProviderError(
                "bad_request", f"request.context is not an incident: {_first_error(exc)}"
            ) from None
        answer = handler(incident, request.context)
        data = answer.model_dump(mode="json")
        if not isinstance(answer, request.schema):
            try:
                request.schema.model_validate(data)
            except ValidationError as exc:
                raise ProviderError(
                    "bad_request", f"the rules' {type(answer).__name__} does not fit "
                    f"{request.schema.__name__}: {_first_error(exc)}",
                ) from None  # fmt: skip
        raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        latency_ms = max(0.0, (self._timer() - start) * 1000.0)
        return ProviderResult(data, raw, Usage(0, 0), self.model, latency_ms, self.kind)

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"RulesProvider(model={self.model!r})"
