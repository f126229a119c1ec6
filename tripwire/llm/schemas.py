"""The answers the LLM roles must give: strict pydantic models, one per skill.

* :class:`TriageVerdict` (``triage-analyst``): what a trip is, how sure, and why;
* :class:`StrategistProposal` (``strategist``): BUY, SELL or HOLD, with size and exits;
* :class:`DoubleCheck` (``double-checker``): a blind second opinion on a proposal.

Every model forbids extra fields, bounds every string and list, refuses NaN and infinity,
and lists every field as required (a nullable one may be ``null``, never absent), so the
same JSON schema works for providers that insist on strict schemas. ``source`` says who
answered: ``"llm"`` for a model, ``"rules"`` for the offline analyst
(:mod:`tripwire.llm.rules`); the router's ``LLMResponse.source`` is the authority on which
route produced it.

>>> v = TriageVerdict.model_validate({"classification": "DATA_ERROR", "confidence": 0.9,
...     "reasoning": "one print 20% off", "key_factors": ["single tick"], "source": "llm"})
>>> v.classification is Classification.DATA_ERROR
True
>>> TriageVerdict.model_validate({**v.model_dump(), "mood": "calm"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for TriageVerdict
mood
  Extra inputs are not permitted ...

Class docstrings are short on purpose: pydantic sends them to the model as the schema's
descriptions.

>>> StrategistProposal(action="BUY", symbol="BTCUSDT", size=0.1, limit_price=100.0,
...     stop_loss=101.0, take_profit=None, rationale="x", confidence=0.5,
...     source="rules")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for StrategistProposal
  Value error, a BUY's stop_loss must be below its limit_price ...
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tripwire.model import Side

Source = Literal["llm", "rules"]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
Factor = Annotated[str, Field(min_length=1, max_length=200)]
Price = Annotated[float, Field(gt=0.0)]

MAX_TEXT = 2000  # reasoning / rationale characters: a paragraph, not an essay
MAX_FACTORS = 8


class Classification(StrEnum):
    """What the trip is."""

    TECHNICAL_SPIKE = "TECHNICAL_SPIKE"  # real but unexplained: block trade, thin book
    NEWS_DRIVEN = "NEWS_DRIVEN"  # a headline about the symbol moved it
    MANIPULATION = "MANIPULATION"  # pump and dump, spoofing-like run-up and reversal
    LIQUIDATION_CASCADE = "LIQUIDATION_CASCADE"  # forced selling (or buying) in steps
    DATA_ERROR = "DATA_ERROR"  # bad print, feed gap: the data, not the market
    IGNORE = "IGNORE"  # barely over a threshold, nothing to act on


class Action(StrEnum):
    """What the strategist wants: an order on one side (BUY, SELL; the same names as
    :class:`tripwire.model.Side`, the one side type) or nothing (HOLD)."""

    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"

    @property
    def side(self) -> Side:
        """The order side of BUY or SELL (HOLD has none: ValueError)."""
        return Side.of(self.value)


class CheckVerdict(StrEnum):
    AGREE = "AGREE"
    DISAGREE = "DISAGREE"
    ABSTAIN = "ABSTAIN"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TriageVerdict(_Strict):
    """The triage of one incident."""

    classification: Classification
    confidence: Confidence = Field(description="0 (a guess) to 1 (certain)")
    reasoning: str = Field(min_length=1, max_length=MAX_TEXT, description="why, briefly")
    key_factors: list[Factor] = Field(
        max_length=MAX_FACTORS, description="the facts that decided it, most important first"
    )
    source: Source = Field(description='"llm" for a model')


class StrategistProposal(_Strict):
    """The strategist's proposal; size is a fraction of the maximum position. A HOLD has
    size 0 and no prices. A BUY or SELL has a size above 0 and a stop loss; with a limit
    price, the stop and the take profit lie on the right sides of it."""

    action: Action
    symbol: str = Field(min_length=1, max_length=64, pattern=r"^\S+$")
    size: float = Field(ge=0.0, le=1.0, description="fraction of the maximum position")
    limit_price: Price | None = Field(description="null: at market")
    stop_loss: Price | None
    take_profit: Price | None
    rationale: str = Field(min_length=1, max_length=MAX_TEXT)
    confidence: Confidence
    source: Source = Field(description='"llm" for a model')

    @model_validator(mode="after")
    def _coherent(self) -> StrategistProposal:
        if self.action is Action.HOLD:
            if self.size != 0.0:
                raise ValueError("a HOLD has size 0")
            if any(p is not None for p in (self.limit_price, self.stop_loss, self.take_profit)):
                raise ValueError("a HOLD has no limit_price, stop_loss or take_profit")
            return self
        if self.size <= 0.0:
            raise ValueError(f"a {self.action.value} needs a size above 0")
        if self.stop_loss is None:
            raise ValueError(f"a {self.action.value} needs a stop_loss")
        self._check_sides()
        return self

    def _check_sides(self) -> None:
        buy = self.action is Action.BUY
        ref = self.limit_price
        if ref is not None and (self.stop_loss >= ref if buy else self.stop_loss <= ref):
            side = "below" if buy else "above"
            raise ValueError(f"a {self.action.value}'s stop_loss must be {side} its limit_price")
        tp = self.take_profit
        if tp is None:
            return
        if ref is not None and (tp <= ref if buy else tp >= ref):
            side = "above" if buy else "below"
            raise ValueError(f"a {self.action.value}'s take_profit must be {side} its limit_price")
        if tp <= self.stop_loss if buy else tp >= self.stop_loss:
            side = "above" if buy else "below"
            raise ValueError(f"a {self.action.value}'s take_profit must be {side} its stop_loss")


class DoubleCheck(_Strict):
    """A blind second opinion on a proposal; a DISAGREE names at least one concern. An
    AGREE may cap the size (max_size): the trade is then made smaller, never larger."""

    verdict: CheckVerdict
    concerns: list[Factor] = Field(max_length=MAX_FACTORS)
    confidence: Confidence
    max_size: float | None = Field(
        ge=0.0, le=1.0, description="largest size you would sign (fraction of the maximum "
        "position); null: the proposal's size"
    )
    source: Source = Field(description='"llm" for a model')

    @model_validator(mode="after")
    def _explained(self) -> DoubleCheck:
        if self.verdict is CheckVerdict.DISAGREE and not self.concerns:
            raise ValueError("a DISAGREE names at least one concern")
        return self


ROLE_MODELS: dict[str, type[BaseModel]] = {
    "triage-analyst": TriageVerdict,
    "strategist": StrategistProposal,
    "double-checker": DoubleCheck,
}


def model_for(role: str) -> type[BaseModel]:
    """The answer model of a role.

    >>> model_for("strategist").__name__
    'StrategistProposal'
    """
    try:
        return ROLE_MODELS[role]
    except KeyError:
        known = sorted(ROLE_MODELS)
        raise KeyError(f"no answer model for role {role!r} (known: {known})") from None
