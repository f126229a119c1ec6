"""Market data feeds: every source yields validated columnar tick batches.

Sources: the scenario generator (the embedded default), Binance WebSocket streams, Binance
public trade dumps (CSV), and replay from the tick store. Each runs its ticks through a
:class:`~tripwire.feeds.validate.TickValidator`, so bad ticks become dead letters with a
reason and never reach a detector.
"""

from tripwire.feeds.base import Feed, FeedChunk
from tripwire.feeds.validate import Gap, TickValidator, Validated

__all__ = ["Feed", "FeedChunk", "Gap", "TickValidator", "Validated"]
