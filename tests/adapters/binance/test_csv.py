"""Binance public trade dumps: layouts, units, sides, bad rows, chunking, merging, errors."""

from __future__ import annotations

import asyncio
import math
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tripwire.adapters.binance.loader import (
    FUTURES_AGG_TRADES,
    FUTURES_TRADES,
    LAYOUTS,
    SPOT_AGG_TRADES,
    SPOT_TRADES,
    BinanceCsvError,
    BinanceCsvFeed,
    Layout,
    parse_block,
    parse_line,
)
from tripwire.feeds.base import Feed
from tripwire.model import DeadReason, SimClock, SymbolTable, TickBatch

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


# ----------------------------------------------------------------------------- helpers


def boolean(flag: bool, lower: bool) -> str:
    text = "True" if flag else "False"
    return text.lower() if lower else text


def row_text(layout: Layout, tid: int, price: str, qty: str, time: int, maker: bool) -> str:
    lower = layout.name.startswith("futures")  # futures dumps spell booleans in lower case
    if layout.kind == "trades":
        fields = [str(tid), price, qty, f"{float(price) * float(qty):.8f}", str(time)]
    else:
        fields = [str(tid), price, qty, str(tid * 3), str(tid * 3 + 2), str(time)]
    fields.append(boolean(maker, lower))
    if layout.name.startswith("spot"):
        fields.append(boolean(True, lower))
    return ",".join(fields)


def make_rows(
    layout: Layout, n: int, *, start_id: int = 100, start_ms: int = T0_MS, unit: str = "ms"
) -> tuple[list[str], list[tuple[int, int, float, float, int]]]:
    """Lines of a clean dump and the ticks they mean: (trade id, ts ns, price, qty, side)."""
    lines, ticks = [], []
    for i in range(n):
        tid, ms = start_id + i, start_ms + 7 * i
        time = ms if unit == "ms" else ms * 1000 + i % 1000
        ts_ns = time * (1_000_000 if unit == "ms" else 1_000)
        price, qty, maker = f"{42000 + i * 0.25:.8f}", f"{0.001 * (i % 17 + 1):.8f}", i % 3 == 0
        lines.append(row_text(layout, tid, price, qty, time, maker))
        ticks.append((tid, ts_ns, float(price), float(qty), -1 if maker else 1))
    return lines, ticks


def write_dump(
    directory: Path, name: str, lines: list[str], *, header: str | None = None, eol: str = "\n"
) -> Path:
    """Write ``name`` (.csv, or .zip holding the same-named .csv)."""
    text = eol.join(([header] if header else []) + lines) + (eol if lines else "")
    path = directory / name
    if name.endswith(".zip"):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name.removesuffix(".zip") + ".csv", text)
    else:
        path.write_text(text, newline="")
    return path


def read_all(feed: BinanceCsvFeed):
    """All chunks of a feed: the ticks concatenated, the dead letters and gaps in order."""
    chunks = list(feed.iter_chunks())
    ticks = TickBatch.concat([c.ticks for c in chunks])
    return ticks, [d for c in chunks for d in c.dead], [g for c in chunks for g in c.gaps]


def tick_tuples(ticks: TickBatch) -> list[tuple]:
    cols = (ticks.trade_id, ticks.ts_ns, ticks.price, ticks.qty, ticks.side)
    return list(zip(*(c.tolist() for c in cols), strict=True))


def feed_of(*paths: Path, **kw) -> BinanceCsvFeed:
    return BinanceCsvFeed(list(paths), clock=SimClock(123), **kw)


HEADERS = {
    FUTURES_TRADES.name: "id,price,qty,quote_qty,time,is_buyer_maker",
    FUTURES_AGG_TRADES.name: (
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
    ),
    SPOT_TRADES.name: ",".join(SPOT_TRADES.columns),
    SPOT_AGG_TRADES.name: ",".join(SPOT_AGG_TRADES.columns),
}


# ----------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
@pytest.mark.parametrize("header", [False, True], ids=["no-header", "header"])
@pytest.mark.parametrize("suffix", [".csv", ".zip"])
def test_every_layout_with_and_without_header_zipped_or_not(tmp_path, layout, header, suffix):
    lines, want = make_rows(layout, 50)
    name = f"BTCUSDT-{layout.kind}-2024-01{'-01' if layout.kind == 'trades' else ''}{suffix}"
    path = write_dump(tmp_path, name, lines, header=HEADERS[layout.name] if header else None)
    feed = feed_of(path, chunk_rows=16)
    ticks, dead, gaps = read_all(feed)
    assert tick_tuples(ticks) == want
    assert set(ticks.symbol_id.tolist()) == {feed.symbols.id("BTCUSDT")}
    assert dead == [] and gaps == []
    assert feed.files[0].layout == layout and feed.files[0].header is header
    assert feed.stats() == {
        "rows": 50,
        "ticks": 50,
        "dead": {},
        "gaps": 0,
        "missing_trade_ids": 0,
        "files_done": 1,
        "files": 1,
        "time_units": {name: "ms"},
    }
    assert feed.source == f"binance-csv:{name}"


def test_layout_comes_from_the_rows_when_the_name_does_not_say(tmp_path):
    # Seven fields are spot trades or futures aggTrades: which fields are booleans decides.
    for layout in (SPOT_TRADES, FUTURES_AGG_TRADES):
        lines, want = make_rows(layout, 5)
        path = write_dump(tmp_path, f"{layout.name}.csv", lines)
        feed = feed_of(path, symbol="ETHUSDT")
        assert feed.files[0].layout == layout
        assert tick_tuples(read_all(feed)[0]) == want


def test_explicit_layout_header_and_symbol(tmp_path):
    lines, want = make_rows(FUTURES_TRADES, 5)
    path = write_dump(tmp_path, "dump.csv", lines, header="a,b,c,d,e,f")
    feed = feed_of(path, symbol="ethusdt", layout="futures-trades", header=True)
    ticks, dead, _ = read_all(feed)
    assert tick_tuples(ticks) == want and dead == []
    assert feed.symbols.names == ("ethusdt",)
    with pytest.raises(ValueError, match="layout must be one of"):
        feed_of(path, symbol="X", layout="options")


def test_a_damaged_first_row_is_not_taken_for_a_header(tmp_path):
    lines, want = make_rows(SPOT_TRADES, 4)
    lines[0] = lines[0].replace("42000.00000000", "4200O.0")  # letter O, still has numbers
    feed = feed_of(write_dump(tmp_path, "BTCUSDT-trades-2024-01-01.csv", lines))
    ticks, dead, _ = read_all(feed)
    assert tick_tuples(ticks) == want[1:]
    assert [(d.reason, d.detail) for d in dead] == [
        (DeadReason.MALFORMED, "line 1: price is not a number: '4200O.0'")
    ]


# ----------------------------------------------------------------------------- time and side


def test_time_unit_is_detected_per_file(tmp_path):
    ms_lines, ms_want = make_rows(SPOT_TRADES, 20, unit="ms")
    us_lines, us_want = make_rows(SPOT_TRADES, 20, start_id=120, start_ms=T0_MS + 1000, unit="us")
    a = write_dump(tmp_path, "BTCUSDT-trades-2024-12-31.csv", ms_lines)
    b = write_dump(tmp_path, "BTCUSDT-trades-2025-01-01.zip", us_lines)
    feed = feed_of(a, b)
    ticks, dead, _ = read_all(feed)
    assert dead == [] and tick_tuples(ticks) == ms_want + us_want
    assert feed.stats()["time_units"] == {a.name: "ms", b.name: "us"}
    assert us_want[1][1] % 1_000_000 != 0  # the microseconds survive


def test_explicit_time_unit_and_implausible_times(tmp_path):
    lines, want = make_rows(SPOT_TRADES, 3, unit="us")
    path = write_dump(tmp_path, "BTCUSDT-trades-2025-01-01.csv", lines)
    assert tick_tuples(read_all(feed_of(path, time_unit="us"))[0]) == want
    feed = feed_of(path, time_unit="ms")  # microseconds read as ms: thousands of years ahead
    ticks, dead, _ = read_all(feed)
    assert len(ticks) == 0
    assert [d.reason for d in dead] == [DeadReason.BAD_TIME] * 3
    assert dead[0].detail == (
        f"line 1: time={want[0][1] // 1000} ms is outside 2017-01-01..2200-01-01"
    )
    assert feed.stats()["dead"] == {"bad_time": 3}
    with pytest.raises(ValueError, match="time_unit must be"):
        feed_of(path, time_unit="s")


@pytest.mark.parametrize("layout", [SPOT_TRADES, FUTURES_AGG_TRADES])
def test_buyer_maker_means_the_taker_sold(tmp_path, layout):
    lines = [
        row_text(layout, 1, "10.0", "1.0", T0_MS, True),
        row_text(layout, 2, "10.0", "1.0", T0_MS, False),
    ]
    ticks, _, _ = read_all(feed_of(write_dump(tmp_path, "x.csv", lines), symbol="X"))
    assert ticks.side.tolist() == [-1, 1]


# ----------------------------------------------------------------------------- bad rows


def test_bad_rows_become_dead_letters_and_good_rows_still_arrive(tmp_path):
    lines, want = make_rows(SPOT_TRADES, 12)
    bad = {
        1: "101,42000.25,0.002,84.0,1704067200007,True",  # 6 fields
        2: "102,abc,0.003,1.0,1704067200014,False,True",  # price not a number
        3: "103,42000.75,0.004,1.0,1704067200021,maybe,True",  # not a boolean
        4: "104,42001.0,,1.0,1704067200028,False,True",  # empty qty
        5: "105,-1.5,0.006,1.0,1704067200035,False,True",  # parses; the validator refuses it
        6: "106,42001.5,nan,1.0,1704067200042,False,True",  # likewise
        7: "107,42001.75,0.008,1.0,1704067200,False,True",  # seconds, not ms
        8: "-108,42002.0,0.009,1.0,1704067200056,False,True",  # negative id
    }
    for i, text in bad.items():
        lines[i] = text
    lines.insert(9, "")  # a blank line is no row
    lines.append(lines[-1])  # a repeated row
    path = write_dump(tmp_path, "BTCUSDT-trades-2024-01-01.csv", lines)
    feed = feed_of(path, chunk_rows=4)
    ticks, dead, _ = read_all(feed)
    assert tick_tuples(ticks) == [w for i, w in enumerate(want) if i not in bad]
    assert [(d.reason.value, d.detail) for d in dead] == [
        ("malformed", "line 2: expected 7 fields (spot-trades), got 6"),
        ("malformed", "line 3: price is not a number: 'abc'"),
        ("malformed", "line 4: is_buyer_maker is not a boolean: 'maybe'"),
        ("malformed", "line 5: qty is not a number: ''"),
        ("bad_price", "line 6: price=-1.5"),
        ("bad_qty", "line 7: qty=nan"),
        ("bad_time", "line 8: time=1704067200 ms is outside 2017-01-01..2200-01-01"),
        ("malformed", "line 9: id is negative: '-108'"),
        ("duplicate", "line 14: trade_id=111 is not above an accepted trade id"),
    ]
    by_line = {int(d.detail.split(":")[0].removeprefix("line ")): d for d in dead}
    for i, text in bad.items():
        assert by_line[i + 1].raw == text
    assert {d.source for d in dead} == {"binance-csv:BTCUSDT-trades-2024-01-01.csv"}
    assert {d.symbol for d in dead} == {"BTCUSDT"} and {d.ts_ns for d in dead} == {123}
    stats = feed.stats()
    assert stats["rows"] == 13 and stats["ticks"] == 4
    assert stats["dead"] == {
        "malformed": 5,
        "bad_price": 1,
        "bad_qty": 1,
        "bad_time": 1,
        "duplicate": 1,
    }


def test_lines_outside_the_fast_grammar_follow_pythons_int_and_float(tmp_path):
    lines = [
        "1, 42000.5 ,+0.5,1e3,1704067200000,True,True",  # blanks and signs
        "2,4.2e4,5E-1,1,1704067200001,False,True\r",  # exponents, a CR line end
        "3,42000.123456789012345678,0.5,1,1704067200002,False,True",  # > 16 digits
        "4,42000.,.5,1,1704067200003,False,True",  # bare dots
        "5,inf,0.5,1,1704067200004,False,True",  # a number, but not a price
        "6,42000,0.5,1,1704067200005.0,False,True",  # not an integer time
    ]
    path = write_dump(tmp_path, "BTCUSDT-trades-2024-01-01.csv", lines)
    ticks, dead, _ = read_all(feed_of(path))
    assert ticks.trade_id.tolist() == [1, 2, 3, 4]
    assert ticks.price.tolist() == [42000.5, 42000.0, float("42000.123456789012345678"), 42000.0]
    assert ticks.qty.tolist() == [0.5, 0.5, 0.5, 0.5]
    assert [(d.reason.value, d.raw) for d in dead] == [
        ("bad_price", lines[4]),
        ("malformed", lines[5]),
    ]


def test_out_of_order_and_gaps_are_caught_by_trade_id(tmp_path):
    lines, _ = make_rows(SPOT_AGG_TRADES, 6)
    lines[3], lines[4] = lines[4], lines[3]  # id 104 before 103
    del lines[1]  # id 101 missing
    path = write_dump(tmp_path, "BTCUSDT-aggTrades-2024-01.zip", lines)
    feed = feed_of(path, chunk_rows=2)
    ticks, dead, gaps = read_all(feed)
    assert ticks.trade_id.tolist() == [100, 102, 104, 105]
    assert [(d.reason.value, d.detail.split(":")[0]) for d in dead] == [("duplicate", "line 4")]
    assert [(g.after_trade_id, g.before_trade_id) for g in gaps] == [(100, 102), (102, 104)]
    assert feed.stats()["missing_trade_ids"] == 2
    assert read_all(feed_of(path, detect_gaps=False, symbols=SymbolTable()))[2] == []


# ----------------------------------------------------------------------------- chunking


def test_chunk_boundaries_do_not_change_the_result(tmp_path):
    lines, _ = make_rows(SPOT_TRADES, 200, unit="us")
    for i in range(0, 200, 13):
        lines[i] = lines[i].replace(",", ";", 1)  # malformed
    for i in range(5, 200, 17):
        lines[i] = lines[i - 2]  # duplicate of a row two back
    path = write_dump(tmp_path, "BTCUSDT-trades-2025-01-01.zip", lines)

    def result(**kw):
        ticks, dead, gaps = read_all(feed_of(path, **kw))
        letters = [(d.reason, d.raw, d.detail, d.source) for d in dead]
        return tick_tuples(ticks), letters, [(g.after_trade_id, g.before_trade_id) for g in gaps]

    whole = result(chunk_rows=10_000)
    assert len(whole[0]) > 150 and len(whole[1]) > 20
    for chunk_rows, read_bytes in [(1, 7), (3, 100), (16, 1), (64, 4096), (199, 1 << 20)]:
        assert result(chunk_rows=chunk_rows, read_bytes=read_bytes) == whole


def test_a_sparse_symbols_day_is_read_whole_whatever_the_chunk_spans(tmp_path):
    """A chunk of a sparse symbol spans more than twice the market-time skew (6 h): its
    tail was dead-lettered ``bad_time`` against the chunk's median (a 2-day dump at one
    trade per 2 minutes lost its second half). Every row follows the one before, so every
    row is read; an absurd row in the middle is still refused and moves nothing."""
    lines = [row_text(SPOT_TRADES, 100 + i, f"{42000 + i:.8f}", "0.01000000",
                      T0_MS + i * 120_000, False) for i in range(1_440)]  # 2 days
    lines.insert(700, row_text(SPOT_TRADES, 5_000, "42000.00000000", "0.01000000",
                               T0_MS + 400 * 86_400_000, False))  # 400 days ahead
    path = write_dump(tmp_path, "BTCUSDT-trades-2025-01-01.csv", lines)
    ticks, dead, _ = read_all(feed_of(path, chunk_rows=65_536))
    assert len(ticks) == 1_440 and [d.reason for d in dead] == ["bad_time"]
    assert ticks.ts_ns.max() == (T0_MS + 1_439 * 120_000) * 1_000_000


ODD_FIELDS = st.sampled_from(
    [
        *["", ".", "5.", ".5", "1.2.3", "nan", "inf", "-1", "+2", " 3", "1e5", "0x1", "1_0"],
        *["9" * 17, "9" * 25, "0" * 20 + "1", "\u0661", "abc", "TRUE", "Fals", "Truee", "1"],
        *["True ", "3\x00", "4\xe9"],
    ]
)
FIELD_BY_KIND = {
    "i": st.one_of(st.from_regex(r"[0-9]{1,17}", fullmatch=True), ODD_FIELDS),
    "d": st.one_of(st.from_regex(r"[0-9]{0,10}\.?[0-9]{0,10}", fullmatch=True), ODD_FIELDS),
    "b": st.one_of(st.sampled_from(["True", "False", "true", "false"]), ODD_FIELDS),
}


@st.composite
def csv_line(draw, layout: Layout) -> str:
    """Mostly well-formed lines of ``layout``; odd fields, wrong counts, CRs and blanks too."""
    fields = [draw(FIELD_BY_KIND[k]) for k in layout.kinds]
    change = draw(st.sampled_from(["none"] * 6 + ["drop", "add", "cr", "blank"]))
    if change == "drop":
        del fields[draw(st.integers(0, len(fields) - 1))]
    elif change == "add":
        fields.append(draw(FIELD_BY_KIND["d"]))
    text = ",".join(fields)
    return {"cr": text + "\r", "blank": ""}.get(change, text)


@given(
    st.sampled_from(list(LAYOUTS.values())).flatmap(
        lambda layout: st.tuples(st.just(layout), st.lists(csv_line(layout), max_size=30))
    )
)
def test_the_fast_parser_agrees_with_the_line_grammar(case):
    layout, lines = case
    block = parse_block("\n".join(lines).encode() + b"\n", layout)
    good, bad = {}, []
    for i, text in enumerate(lines):
        parsed = parse_line(text.removesuffix("\r"), layout)
        if isinstance(parsed, str):
            bad.append((i, parsed))
        elif parsed is not None:
            good[i] = parsed
    assert block.bad == bad
    assert block.line.tolist() == list(good)
    got = zip(
        block.trade_id.tolist(),
        block.price.tolist(),
        block.qty.tolist(),
        block.time.tolist(),
        block.buyer_maker.tolist(),
        strict=True,
    )
    for row, want in zip(got, good.values(), strict=True):
        assert [_nan_safe(x) for x in row] == [_nan_safe(x) for x in want]


def _nan_safe(x):
    return "nan" if isinstance(x, float) and math.isnan(x) else x


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**16 - 1),
            st.integers(0, 10**17),
            st.integers(0, 17),
            st.booleans(),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_fast_decimals_are_exactly_pythons_floats(values):
    # Digits with the dot anywhere, so each row takes its own column of the fast path.
    lines = []
    for tid, digits, frac, maker in values:
        text = str(digits).zfill(frac + 1)
        price = text[: len(text) - frac] + ("." + text[len(text) - frac :] if frac else "")
        lines.append(f"{tid},{price},{price},1,{T0_MS},{boolean(maker, False)}")
    block = parse_block("\n".join(lines).encode(), FUTURES_TRADES)
    assert block.bad == []
    assert block.price.tolist() == [float(x.split(",")[1]) for x in lines]
    assert block.trade_id.tolist() == [v[0] for v in values]


@given(st.data())
def test_feed_result_does_not_depend_on_chunking(data):
    n = data.draw(st.integers(1, 60))
    lines, _ = make_rows(FUTURES_TRADES, n)
    for i in data.draw(st.lists(st.integers(0, n - 1), max_size=8)):
        lines[i] = data.draw(st.sampled_from(["", "x", "1,2", lines[i][:-3], lines[max(0, i - 1)]]))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_dump(
            Path(tmp), "ETHUSDT-trades-2024-01-01.csv", lines, header=HEADERS[FUTURES_TRADES.name]
        )

        def result(**kw):
            ticks, dead, _ = read_all(feed_of(path, **kw))
            return tick_tuples(ticks), [(d.reason, d.raw, d.detail) for d in dead]

        chunk_rows = data.draw(st.integers(1, 70))
        read_bytes = data.draw(st.integers(1, 300))
        assert result(chunk_rows=chunk_rows, read_bytes=read_bytes) == result()


# ----------------------------------------------------------------------------- several files


def test_several_symbols_merge_in_time_order(tmp_path):
    btc1, btc1_want = make_rows(SPOT_TRADES, 40, start_id=1, start_ms=T0_MS)
    btc2, btc2_want = make_rows(SPOT_TRADES, 40, start_id=41, start_ms=T0_MS + 86_400_000)
    eth1, eth1_want = make_rows(SPOT_TRADES, 90, start_id=500, start_ms=T0_MS + 3)
    eth2, eth2_want = make_rows(SPOT_TRADES, 10, start_id=590, start_ms=T0_MS + 86_400_005)
    eth1[30], eth1[31] = eth1[31], eth1[30]  # one tick goes back in time inside ETH
    eth1_want = eth1_want[:30] + eth1_want[31:]
    paths = [
        write_dump(tmp_path, "BTCUSDT-trades-2024-01-01.zip", btc1),
        write_dump(tmp_path, "ETHUSDT-trades-2024-01-01.csv", eth1),
        write_dump(tmp_path, "BTCUSDT-trades-2024-01-02.zip", btc2),
        write_dump(tmp_path, "ETHUSDT-trades-2024-01-02.zip", eth2),
    ]
    for chunk_rows in (7, 1000):
        feed = feed_of(*paths, chunk_rows=chunk_rows)
        ticks, dead, _ = read_all(feed)
        assert (np.diff(ticks.ts_ns) >= 0).all()
        btc, eth = (
            ticks.take(ticks.symbol_id == feed.symbols.id(s)) for s in ("BTCUSDT", "ETHUSDT")
        )
        assert tick_tuples(btc) == btc1_want + btc2_want
        assert tick_tuples(eth) == eth1_want + eth2_want
        assert [(d.reason.value, d.source, d.detail.split(":")[0]) for d in dead] == [
            ("duplicate", "binance-csv:ETHUSDT-trades-2024-01-01.csv", "line 32")
        ]
        stats = feed.stats()
        assert stats["files_done"] == stats["files"] == 4 and stats["rows"] == 180
        assert feed.source == "binance-csv:BTCUSDT-trades-2024-01-01.zip (+3 more)"


def test_files_of_one_symbol_are_read_in_the_given_order(tmp_path):
    day1, _ = make_rows(FUTURES_TRADES, 3, start_id=1)
    day2, want2 = make_rows(FUTURES_TRADES, 3, start_id=4, start_ms=T0_MS + 86_400_000)
    a = write_dump(tmp_path, "BTCUSDT-trades-2024-01-01.csv", day1)
    b = write_dump(tmp_path, "BTCUSDT-trades-2024-01-02.csv", day2)
    ticks, dead, _ = read_all(feed_of(b, a))
    assert tick_tuples(ticks) == want2
    assert [d.reason for d in dead] == [DeadReason.DUPLICATE] * 3


def test_the_feed_streams_through_the_async_protocol(tmp_path):
    lines, want = make_rows(SPOT_TRADES, 30)
    feed = feed_of(write_dump(tmp_path, "BTCUSDT-trades-2024-01-01.zip", lines), chunk_rows=8)
    assert isinstance(feed, Feed)

    async def collect():
        return [chunk async for chunk in feed.chunks()]

    chunks = asyncio.run(collect())
    assert len(chunks) == 4
    ticks = TickBatch.concat([c.ticks for c in chunks])
    assert tick_tuples(ticks) == want and (ticks.recv_ns == 123).all()
    with pytest.raises(RuntimeError, match="already read"):
        next(feed.iter_chunks())


def test_empty_and_header_only_files(tmp_path):
    empty = write_dump(tmp_path, "BTCUSDT-trades-2024-01-01.csv", [])
    only_header = write_dump(
        tmp_path, "BTCUSDT-trades-2024-01-02.zip", [], header=HEADERS[FUTURES_TRADES.name]
    )
    feed = feed_of(empty, only_header)
    assert list(feed.iter_chunks()) == []
    assert feed.stats()["files_done"] == 2 and feed.stats()["rows"] == 0


# ----------------------------------------------------------------------------- errors


def test_a_missing_file_is_named(tmp_path):
    good = write_dump(tmp_path, "BTCUSDT-trades-2024-01-01.csv", make_rows(SPOT_TRADES, 1)[0])
    with pytest.raises(FileNotFoundError, match="BTCUSDT-trades-2024-01-02.zip: no such file"):
        feed_of(good, tmp_path / "BTCUSDT-trades-2024-01-02.zip")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("BTCUSDT-trades-2024-01-01.csv", ["1;2;3", "4;5;6"], "cannot tell the layout"),
        ("BTCUSDT-trades-2024-01-01.csv", ["x,y,z", "1,2,3"], "header 'x,y,z' is not a Binance"),
        ("BTCUSDT-aggTrades-2024-01.csv", None, "the file name says aggTrades but the rows"),
        ("trades.csv", None, "cannot tell the symbol from the file name"),
    ],
)
def test_an_unreadable_layout_is_named(tmp_path, name, content, message):
    path = write_dump(tmp_path, name, content or make_rows(SPOT_TRADES, 2)[0])
    with pytest.raises(BinanceCsvError, match=f"{name}: {message}"):
        feed_of(path)


def test_bad_zips_are_named(tmp_path):
    broken = tmp_path / "BTCUSDT-trades-2024-01-01.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(BinanceCsvError, match="BTCUSDT-trades-2024-01-01.zip: not a readable zip"):
        feed_of(broken)
    two = tmp_path / "BTCUSDT-trades-2024-01-02.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", "")
        archive.writestr("b.csv", "")
    with pytest.raises(BinanceCsvError, match="expected one .csv inside the zip"):
        feed_of(two)


def test_a_damaged_zip_stops_the_feed_naming_the_file(tmp_path):
    lines, _ = make_rows(SPOT_TRADES, 20_000)
    path = write_dump(tmp_path, "BTCUSDT-trades-2024-01-01.zip", lines)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A  # damage the compressed stream past what inspection reads
    path.write_bytes(bytes(data))
    feed = feed_of(path, chunk_rows=1000, read_bytes=4096)
    with pytest.raises(BinanceCsvError, match="BTCUSDT-trades-2024-01-01.zip: unreadable after"):
        read_all(feed)


def test_a_header_that_does_not_fit_the_given_layout_is_named(tmp_path):
    path = write_dump(tmp_path, "X-trades-2024-01-01.csv", ["id,price,qty"], header=None)
    with pytest.raises(BinanceCsvError, match="has 3 columns, spot-trades has 7"):
        feed_of(path, layout=SPOT_TRADES)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one file"):
        BinanceCsvFeed([])
    with pytest.raises(ValueError, match="chunk_rows must be an int > 0"):
        BinanceCsvFeed("x.csv", chunk_rows=0)
