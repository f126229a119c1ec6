"""Market data feeds: every source yields validated columnar tick batches.

Here: the scenario generators (the embedded default, realistic, graded events), news
files, replay from the tick store, the Feed protocol and the validator. Venue sources
(Binance WebSocket streams and trade dumps, Polymarket, any ccxt exchange, RSS/Atom news)
are adapters in :mod:`tripwire.adapters`.
Every source runs its ticks through a :class:`~tripwire.feeds.validate.TickValidator`, so
bad ticks become dead letters with a reason and never reach a detector.
"""

from tripwire.feeds.base import Feed, FeedChunk
from tripwire.feeds.validate import Gap, TickValidator, Validated

__all__ = ["Feed", "FeedChunk", "Gap", "TickValidator", "Validated"]
