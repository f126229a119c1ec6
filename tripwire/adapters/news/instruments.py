"""The symbols a headline is about: configured aliases matched as whole words.

``[news.aliases] BTCUSDT = ["BTC", "bitcoin"]`` tags "Bitcoin slides as ETF outflows mount"
to BTCUSDT. Matching is case-insensitive and on word boundaries ("ETH" does not tag
"Ethena"; "bitcoin's" is tagged). A headline tagged to nothing is market-wide news (the
incident's news window shows it to every symbol, as scenario news).

>>> t = SymbolTagger({"BTCUSDT": ("BTC", "bitcoin"), "ETHUSDT": ("ETH", "ether")})
>>> t.tag("Bitcoin's rally stalls; Ethena and ether diverge")
('BTCUSDT', 'ETHUSDT')
>>> t.tag("Fed holds rates")
()
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class SymbolTagger:
    def __init__(self, aliases: Mapping[str, tuple[str, ...]]) -> None:
        self._patterns = [
            (symbol, re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words)
                                + r")(?!\w)", re.IGNORECASE))
            for symbol, words in aliases.items() if words
        ]

    def tag(self, text: str) -> tuple[str, ...]:
        return tuple(symbol for symbol, pattern in self._patterns if pattern.search(text))
