"""Recorded feed files as news items: no headline earlier than its fetch, malformed refused."""

from __future__ import annotations

import pytest

from tests.adapters.news.server import DATA, recorded
from tripwire.adapters.news.config import NewsConfig
from tripwire.adapters.news.loader import read_document, read_file
from tripwire.model import NS_PER_SECOND, DeadReason

T = 1_796_623_200 * NS_PER_SECOND
CFG = NewsConfig.from_table({"aliases": {"BTCUSDT": ["bitcoin"], "ETHUSDT": ["ether"]}})


def test_items_are_never_earlier_than_the_fetch_and_keep_the_source_time():
    doc = recorded("wire_b.xml", pub1_ns=T, pub2_ns=T + 30 * NS_PER_SECOND)
    items, dead = read_document(doc, "wire-b", CFG, fetched_ns=T + 10 * NS_PER_SECOND)
    assert dead == []
    assert [(n.headline, n.ts_ns - T) for n in items] == [
        ("BITCOIN SLIDES AS ETF OUTFLOWS MOUNT!", 10 * NS_PER_SECOND),
        ("Ether staking queue empties", 30 * NS_PER_SECOND)]
    assert items[0].published_ns == T and items[0].symbols == ("BTCUSDT",)
    assert items[1].symbols == ("ETHUSDT",) and items[1].source == "wire-b"


def test_a_malformed_recording_is_a_dead_letter_and_a_missing_one_an_error(tmp_path):
    items, dead = read_file(DATA / "malformed.xml", "broken", CFG, fetched_ns=T)
    assert items == [] and [d.reason for d in dead] == [DeadReason.MALFORMED]
    with pytest.raises(ValueError, match="does not exist"):
        read_file(tmp_path / "nope.xml", "x", CFG)
