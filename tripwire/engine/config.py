"""``[engine]``: the settings of the tick path every mode shares (:mod:`tripwire.engine`)."""

from __future__ import annotations

from pydantic import Field

from tripwire.config_model import Section

DEFAULT_REFERENCE_SYMBOL = "BTCUSDT"


class EngineSettings(Section):
    """``[engine]``: the market reference and the market state's bounds.

    ``reference_symbol`` is the symbol whose move over the horizon every incident reports
    as the market reference (``MarketContext.reference_move_pct``); when it is not in the
    symbol table the reference move is None and the incident says so, never another
    symbol's move. ``horizon_min`` minute closes are kept for the market context;
    ``max_news`` headlines for the news window (the oldest fall out first, counted).
    """

    reference_symbol: str = Field(DEFAULT_REFERENCE_SYMBOL, min_length=1, max_length=64)
    horizon_min: int = Field(15, ge=1, le=1_440)
    max_news: int = Field(100_000, ge=1)
    news_window_s: float = Field(900.0, gt=0, le=86_400.0, allow_inf_nan=False)
