"""benchmarks.adapters runs and prints one JSON object with a figure per venue parser."""

from __future__ import annotations

import json

from benchmarks.adapters import main


def test_adapters_benchmark_prints_ns_per_message_for_each_venue(capsys):
    assert main(["--json", "--messages", "2000", "--repeats", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in ("binance_parse_ns_per_message", "binance_ns_per_message",
                "ccxt_okx_ns_per_message", "polymarket_parse_ns_per_message",
                "polymarket_ns_per_message"):
        assert figures[key] > 0, key
    # one object, one feed-path figure per venue (benchmarks/polymarket.py folded in)
    assert set(figures["ns_per_message"]) == {"binance", "polymarket", "ccxt:okx"}
    assert figures["ns_per_message"]["polymarket"] == figures["polymarket_ns_per_message"]
