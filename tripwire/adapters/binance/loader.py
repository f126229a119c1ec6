"""Binance public trade dumps (data.binance.vision) read as a feed.

What is here: the four CSV layouts Binance publishes, a fast block parser that turns whole
lines of such a file into columns (:func:`parse_block`), and :class:`BinanceCsvFeed`, which
streams one or more dump files (``.csv`` or ``.zip``) through a
:class:`~tripwire.feeds.validate.TickValidator` as :class:`~tripwire.feeds.base.FeedChunk` s.

The files and their layouts:

* ``SYMBOL-trades-YYYY-MM-DD.csv``: spot ``id,price,qty,quote_qty,time,is_buyer_maker,
  is_best_match`` (no header); USD-M futures ``id,price,qty,quote_qty,time,is_buyer_maker``
  (newer files start with that header line);
* ``SYMBOL-aggTrades-YYYY-MM(-DD).csv``: spot ``agg_trade_id,price,quantity,first_trade_id,
  last_trade_id,transact_time,is_buyer_maker,is_best_match`` (no header); futures the same
  without ``is_best_match`` (with a header);
* usually zipped, one ``.csv`` per ``.zip``; the member is streamed, never extracted.

Rules the reader applies, in the order they matter:

* layout: given, else the header names, else the first data line whose shape (number of
  fields, which of them are booleans) matches one of the four layouts; the four shapes differ,
  and the file name's ``trades``/``aggTrades`` must agree. A header is a first line in which no
  field starts with a digit.
* time unit: given, else decided once per file from the median time of the first rows that
  parse: >= 1e14 is microseconds (spot files since 2025), else milliseconds. Millisecond
  times stay below 1e14 until the year 5138 and microsecond times passed it in 1973, so the
  rule cannot confuse two real dates. A time outside 2017-01-01..2200-01-01 (a unit mix-up, a
  truncated number) is a ``bad_time`` dead letter.
* side: ``is_buyer_maker`` True means the taker sold (``Side.SELL``), False that it bought.
* the trade id (aggregate id for aggTrades) becomes ``trade_id``, so the validator catches
  repeated and out-of-order rows and, with ``detect_gaps``, missing ids.
* a line that does not parse (wrong number of fields, a field that is not a number, a
  boolean other than ``True``/``False``/``true``/``false``) becomes a ``malformed`` dead
  letter with the line's text and ``line N: why`` as detail. Blank lines are skipped. The
  feed never stops on a bad row; the validator's dead letters get the file and line too.
* several files: those of one symbol are read one after the other, in the order given; the
  symbols' streams are merged in time order block by block (a k-way merge): each step
  releases every row up to the lowest of the streams' latest times, so memory stays at one
  block per symbol. Each symbol keeps its own row order (a row that goes back in time stays
  where it is, for the validator to refuse); ticks of different symbols with the same time
  may interleave differently with another ``chunk_rows``.

Speed: a block of lines is parsed with NumPy on the raw bytes (fields located by their
separators, digits turned into integers eight at a time with the SWAR trick), exact for
decimals of up to 16 significant digits. Lines outside that fast grammar (signs, exponents,
blanks, CR line ends, too many digits, garbage) are re-parsed one by one with Python's
``int``/``float``, which is the grammar of record; the fast path only accepts a subset of it
and gives the same values, so the result does not depend on where chunks are cut.

>>> block = parse_block(b"1,42000.5,0.1,4200.05,1704067200000,True,True\\n"
...                     b"2,oops,0.2,1.0,1704067200001,false,True\\n", SPOT_TRADES)
>>> block.trade_id.tolist(), block.price.tolist(), block.buyer_maker.tolist()
([1], [42000.5], [True])
>>> block.bad
[(1, "price is not a number: 'oops'")]

>>> import pathlib, tempfile
>>> from tripwire.model import SimClock
>>> path = pathlib.Path(tempfile.mkdtemp()) / "BTCUSDT-trades-2024-01-01.csv"
>>> _ = path.write_text("1,42000.5,0.1,4200.05,1704067200000,True,True\\n"
...                     "2,42001.0,0.2,8400.2,1704067200001,False,True\\n"
...                     "2,42001.0,0.2,8400.2,1704067200001,False,True\\n")
>>> feed = BinanceCsvFeed(path, clock=SimClock(0))
>>> chunk, = feed.iter_chunks()
>>> chunk.ticks.ts_ns.tolist(), chunk.ticks.side.tolist()
([1704067200000000000, 1704067200001000000], [-1, 1])
>>> [(d.reason.value, d.detail) for d in chunk.dead]
[('duplicate', 'line 3: trade_id=2 is not above an accepted trade id')]
>>> feed.stats()["dead"], feed.stats()["time_units"]
({'duplicate': 1}, {'BTCUSDT-trades-2024-01-01.csv': 'ms'})
"""

from __future__ import annotations

import contextlib
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tripwire.adapters.binance.config import MAX_TS_NS, MIN_TS_NS
from tripwire.adapters.binance.fastnum import NL, field_starts, parse_fast, structure
from tripwire.feeds.base import FeedChunk, IterableFeed
from tripwire.feeds.validate import Gap, TickValidator
from tripwire.model import (
    NS_PER_MS,
    Clock,
    DeadLetter,
    DeadReason,
    Side,
    SymbolTable,
    TickBatch,
)

SOURCE_PREFIX = "binance-csv:"


NS_PER_UNIT = {"ms": NS_PER_MS, "us": 1_000}
MICROSECONDS_FROM = 10**14  # time values at or above this are microseconds (see module doc)


class BinanceCsvError(ValueError):
    """A dump file that cannot be read as a whole (its message names the file)."""


# ----------------------------------------------------------------------------- layouts


@dataclass(frozen=True, slots=True)
class Layout:
    """One CSV layout: column names and kinds (``i`` integer, ``d`` decimal, ``b`` boolean)."""

    name: str
    kind: str  # "trades" or "aggTrades", as in the file names
    columns: tuple[str, ...]
    kinds: str

    @property
    def ncols(self) -> int:
        return len(self.columns)

    @property
    def time_col(self) -> int:
        return self.columns.index("time" if self.kind == "trades" else "transact_time")

    @property
    def side_col(self) -> int:
        return self.columns.index("is_buyer_maker")

    @property
    def shape(self) -> str:
        """The layout as a data line shows it: ``n`` per number, ``b`` per boolean."""
        return self.kinds.replace("i", "n").replace("d", "n")


SPOT_TRADES = Layout(
    "spot-trades",
    "trades",
    ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"),
    "idddibb",
)
FUTURES_TRADES = Layout(
    "futures-trades",
    "trades",
    ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"),
    "idddib",
)
SPOT_AGG_TRADES = Layout(
    "spot-aggTrades",
    "aggTrades",
    (
        "agg_trade_id",
        "price",
        "quantity",
        "first_trade_id",
        "last_trade_id",
        "transact_time",
        "is_buyer_maker",
        "is_best_match",
    ),
    "iddiiibb",
)
FUTURES_AGG_TRADES = Layout(
    "futures-aggTrades",
    "aggTrades",
    SPOT_AGG_TRADES.columns[:-1],
    "iddiiib",
)
LAYOUTS: dict[str, Layout] = {
    x.name: x for x in (SPOT_TRADES, FUTURES_TRADES, SPOT_AGG_TRADES, FUTURES_AGG_TRADES)
}

_BOOLS = {"True": True, "true": True, "False": False, "false": False}
_FILE_NAME = re.compile(
    r"^(?P<symbol>[A-Za-z0-9_]+)-(?P<kind>trades|aggTrades)-\d{4}-\d{2}(?:-\d{2})?"
    r"(?:\.csv)?(?:\.zip)?$"
)


# ----------------------------------------------------------------------------- block parser


@dataclass(frozen=True, slots=True)
class ParsedBlock:
    """Whole CSV lines parsed into columns, plus why the lines that did not parse failed.

    Row ``i`` of the columns came from line ``line[i]`` of the block (0-based); ``bad`` lists
    ``(line, why)`` in line order. Blank lines are in neither. ``time`` is in the file's unit.
    """

    data: bytes
    line_end: np.ndarray  # int64 offset of every line's newline in ``data``
    line: np.ndarray  # int64
    trade_id: np.ndarray  # int64
    price: np.ndarray  # float64
    qty: np.ndarray  # float64
    time: np.ndarray  # int64
    buyer_maker: np.ndarray  # bool
    bad: list[tuple[int, str]]

    @property
    def n_lines(self) -> int:
        return len(self.line_end)

    @property
    def n_rows(self) -> int:
        """Lines that held a row, good or bad (blank lines excluded)."""
        return len(self.line) + len(self.bad)

    def text(self, line: int) -> str:
        """The text of one line, without its line end."""
        start = int(self.line_end[line - 1]) + 1 if line > 0 else 0
        raw = self.data[start : int(self.line_end[line])]
        return raw.decode("utf-8", errors="replace").removesuffix("\r")


def parse_block(data: bytes, layout: Layout) -> ParsedBlock:
    """Parse whole lines of one layout (``data`` ends with a newline, or one is assumed).

    The vectorised path takes the lines that fit its strict grammar; the rest go through
    :func:`parse_line`, the grammar of record.
    """
    if data and not data.endswith(b"\n"):
        data += b"\n"
    a = np.frombuffer(data, dtype=np.uint8)
    line_end, rows, ends = structure(a, layout.ncols)
    n = len(line_end)
    ok = np.zeros(len(rows), dtype=bool)
    cols: list[np.ndarray] = []
    if len(rows):
        ok, cols = parse_fast(a, field_starts(line_end, rows, ends), ends, layout)
        if len(rows) == n and ok.all():  # the usual block: no line needs a second look
            return ParsedBlock(data, line_end, rows, *cols, [])
    values = _Columns(n)
    fast = np.zeros(n, dtype=bool)
    if len(rows):
        values.fill(rows[ok], *(c[ok] for c in cols))
        fast[rows[ok]] = True
    bad = _slow_lines(data, line_end, np.flatnonzero(~fast), layout, values, fast)
    keep = np.flatnonzero(fast)
    return ParsedBlock(data, line_end, keep, *values.take(keep), bad)


def _slow_lines(
    data: bytes,
    line_end: np.ndarray,
    lines: np.ndarray,
    layout: Layout,
    values: _Columns,
    parsed_mask: np.ndarray,
) -> list[tuple[int, str]]:
    """Parse ``lines`` one by one; fill ``values`` and ``parsed_mask``; return the bad ones."""
    bad: list[tuple[int, str]] = []
    good: list[int] = []
    good_values: list[tuple[int, float, float, int, bool]] = []
    for i in lines.tolist():
        start = int(line_end[i - 1]) + 1 if i > 0 else 0
        text = data[start : int(line_end[i])].decode("utf-8", errors="replace")
        parsed = parse_line(text.removesuffix("\r"), layout)
        if isinstance(parsed, str):
            bad.append((i, parsed))
        elif parsed is not None:  # None: a blank line, no row at all
            good.append(i)
            good_values.append(parsed)
    if good:
        rows = np.array(good, dtype=np.int64)
        values.fill(rows, *zip(*good_values, strict=True))
        parsed_mask[rows] = True
    return bad


def parse_line(text: str, layout: Layout) -> tuple[int, float, float, int, bool] | str | None:
    """One line by the grammar of record: ``(trade_id, price, qty, time, buyer_maker)``.

    Returns the reason when the line is malformed and None for a blank line. Integers are
    what ``int()`` reads (ids must be >= 0, all must fit int64), decimals what ``float()``
    reads, booleans exactly ``True``, ``False``, ``true`` or ``false``.
    """
    if not text.strip():
        return None
    fields = text.split(",")
    if len(fields) != layout.ncols:
        return f"expected {layout.ncols} fields ({layout.name}), got {len(fields)}"
    values: list[int | float | bool] = []
    for name, kind, text_value in zip(layout.columns, layout.kinds, fields, strict=True):
        value = _field_value(name, kind, text_value)
        if isinstance(value, str):
            return value
        values.append(value)
    time = values[layout.time_col]
    side = values[layout.side_col]
    return int(values[0]), float(values[1]), float(values[2]), int(time), bool(side)


def _field_value(name: str, kind: str, text: str) -> int | float | bool | str:
    """The field's value, or the reason it is malformed (a str)."""
    if kind == "b":
        flag = _BOOLS.get(text)
        return f"{name} is not a boolean: {text!r}" if flag is None else flag
    if kind == "d":
        try:
            return float(text)
        except ValueError:
            return f"{name} is not a number: {text!r}"
    try:
        number = int(text)
    except ValueError:
        return f"{name} is not an integer: {text!r}"
    if not -(2**63) <= number < 2**63:
        return f"{name} is out of the int64 range: {text!r}"
    if number < 0 and name.endswith("id"):
        return f"{name} is negative: {text!r}"
    return number


class _Columns:
    """Output columns for every line of a block, filled by the fast and the slow path."""

    def __init__(self, n: int) -> None:
        self.cols = (
            np.zeros(n, np.int64),
            np.zeros(n, np.float64),
            np.zeros(n, np.float64),
            np.zeros(n, np.int64),
            np.zeros(n, bool),
        )

    def fill(self, rows: np.ndarray, *values) -> None:
        for col, v in zip(self.cols, values, strict=True):
            col[rows] = v

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(c[rows] for c in self.cols)




# ----------------------------------------------------------------------------- files


@dataclass(frozen=True, slots=True)
class _FileSpec:
    """One dump file as inspected at construction."""

    path: Path
    symbol: str
    layout: Layout | None  # None: the file holds no row to tell it by (empty)
    header: bool
    index: int = 0  # position in the feed's list of files

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def source(self) -> str:
        return SOURCE_PREFIX + self.path.name


@contextlib.contextmanager
def _open_binary(path: Path) -> Iterator[BinaryIO]:
    """The CSV bytes of a ``.csv`` file or of the one ``.csv`` inside a ``.zip``, streamed."""
    if not path.is_file():
        raise FileNotFoundError(f"binance csv: {path}: no such file")
    if path.suffix.lower() != ".zip":
        with path.open("rb") as f:
            yield f
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise BinanceCsvError(f"{path}: not a readable zip file ({e})") from None
    with archive:
        member = _csv_member(path, archive.namelist())
        with archive.open(member) as f:
            yield f


def _csv_member(path: Path, names: list[str]) -> str:
    csvs = [n for n in names if n.lower().endswith(".csv")]
    if len(csvs) == 1:
        return csvs[0]
    same = [n for n in csvs if Path(n).stem == path.stem]
    if len(same) == 1:
        return same[0]
    raise BinanceCsvError(f"{path}: expected one .csv inside the zip, found {csvs or names}")


def _pieces(stream: BinaryIO, size: int, path: Path) -> Iterator[bytes]:
    done = 0
    while True:
        try:
            piece = stream.read(size)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            # A damaged archive cannot be read past the damage: stop, naming the file.
            raise BinanceCsvError(f"{path}: unreadable after {done} bytes ({e})") from e
        if not piece:
            return
        done += len(piece)
        yield piece


def _skip_first_line(pieces: Iterable[bytes]) -> Iterator[bytes]:
    it = iter(pieces)
    head = b""
    for piece in it:
        head += piece
        cut = head.find(b"\n")
        if cut >= 0:
            yield head[cut + 1 :]
            break
    yield from it


def _line_blocks(pieces: Iterable[bytes], rows: int) -> Iterator[bytes]:
    """Whole lines, ``rows`` at a time (the last block may be shorter; it ends with a newline)."""
    held: list[bytes] = []
    held_lines = 0
    for piece in pieces:
        nl = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == NL)
        used, start = 0, 0
        while len(nl) - used >= rows - held_lines:
            used += rows - held_lines
            cut = int(nl[used - 1]) + 1
            held.append(piece[start:cut])
            yield b"".join(held)
            held, held_lines, start = [], 0, cut
        held.append(piece[start:])
        held_lines += len(nl) - used
    tail = b"".join(held)
    if tail:
        yield tail if tail.endswith(b"\n") else tail + b"\n"


def _inspect(
    path: Path, symbol: str | None, layout: Layout | None, header: bool | None
) -> _FileSpec:
    """Name, symbol, layout and header of one file, from its name and first lines."""
    match = _FILE_NAME.match(path.name)
    if symbol is None:
        if match is None:
            raise BinanceCsvError(
                f"{path}: cannot tell the symbol from the file name (expected "
                "SYMBOL-trades-YYYY-MM-DD.csv or SYMBOL-aggTrades-YYYY-MM.zip); pass symbol="
            )
        symbol = match["symbol"].upper()
    kind = match["kind"] if match else None
    with _open_binary(path) as f:
        head = f.read(1 << 16)
    lines = [x.decode("utf-8", errors="replace").strip() for x in head.split(b"\n")[:100]]
    lines = [x for x in lines if x]
    if not lines:
        return _FileSpec(path, symbol, layout, bool(header))
    first = lines[0].split(",")
    # A header holds names only; even a damaged first data row has fields that start with
    # a digit.
    has_header = not any(x.strip()[:1].isdigit() for x in first) if header is None else header
    if layout is None:
        layout = _detect_layout(path, lines, has_header)
    if kind is not None and layout.kind != kind:
        raise BinanceCsvError(
            f"{path}: the file name says {kind} but the rows are {layout.name} "
            f"({','.join(layout.columns)})"
        )
    if has_header and len(first) != layout.ncols:
        raise BinanceCsvError(
            f"{path}: header {lines[0]!r} has {len(first)} columns, {layout.name} has "
            f"{layout.ncols}"
        )
    return _FileSpec(path, symbol, layout, has_header)


def _detect_layout(path: Path, lines: list[str], has_header: bool) -> Layout:
    if has_header:
        names = tuple(x.strip().lower() for x in lines[0].split(","))
        for candidate in LAYOUTS.values():
            if names == candidate.columns:
                return candidate
        raise BinanceCsvError(
            f"{path}: header {lines[0]!r} is not a Binance trades or aggTrades header"
        )
    shapes = {x.shape: x for x in LAYOUTS.values()}
    for text in lines:
        shape = "".join("b" if x in _BOOLS else "n" for x in text.split(","))
        if shape in shapes:
            return shapes[shape]
    raise BinanceCsvError(
        f"{path}: cannot tell the layout: none of the first {len(lines)} lines looks like a row "
        f"of {', '.join(LAYOUTS)} (first line {lines[0]!r})"
    )


# ----------------------------------------------------------------------------- streams


@dataclass(slots=True)
class _Rows:
    """Parsed rows of one block of one file, in file order, ready to merge."""

    block: ParsedBlock
    spec: _FileSpec
    first_line: int  # file line number of the block's line 0
    symbol_id: int
    line: np.ndarray  # block line of each row
    ts_ns: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    side: np.ndarray
    trade_id: np.ndarray
    key: np.ndarray = field(default=None)  # type: ignore[assignment]  # merge order

    def __len__(self) -> int:
        return len(self.line)

    def take(self, rows: slice) -> _Rows:
        cols = ("line", "ts_ns", "price", "qty", "side", "trade_id", "key")
        return replace(self, **{c: getattr(self, c)[rows] for c in cols})


# A dead letter with its place in the input, (file index, line number), to sort by.
_Letter = tuple[tuple[int, int], DeadLetter]


@dataclass(slots=True)
class _Step:
    rows: _Rows | None
    dead: list[_Letter]


@dataclass(slots=True)
class _Counts:
    rows: int = 0
    files_done: int = 0
    units: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Options:
    chunk_rows: int
    time_unit: str
    read_bytes: int
    clock: Clock


def _read_file(spec: _FileSpec, symbol_id: int, opts: _Options, counts: _Counts) -> Iterator[_Step]:
    """One file as steps of up to ``chunk_rows`` parsed rows and their dead letters."""
    unit = None if opts.time_unit == "auto" else opts.time_unit
    line_no = 1
    with _open_binary(spec.path) as stream:
        pieces: Iterable[bytes] = _pieces(stream, opts.read_bytes, spec.path)
        if spec.header:
            pieces, line_no = _skip_first_line(pieces), 2
        for data in _line_blocks(pieces, opts.chunk_rows):
            if spec.layout is None:  # nothing was there at inspection; refuse to guess now
                raise BinanceCsvError(f"{spec.path}: the file changed while being read")
            block = parse_block(data, spec.layout)
            counts.rows += block.n_rows
            if unit is None and len(block.time):
                unit = "us" if np.median(block.time) >= MICROSECONDS_FROM else "ms"
                counts.units[spec.name] = unit
            yield _block_step(block, spec, symbol_id, line_no, unit or "ms", opts.clock)
            line_no += block.n_lines
    counts.files_done += 1


def _block_step(
    block: ParsedBlock, spec: _FileSpec, symbol_id: int, first_line: int, unit: str, clock: Clock
) -> _Step:
    now = clock.now_ns()

    def letter(reason: DeadReason, line: int, why: str) -> _Letter:
        detail = f"line {first_line + line}: {why}"
        made = DeadLetter.make(spec.source, reason, block.text(line), now, spec.symbol, detail)
        return (spec.index, first_line + line), made

    refused = [(line, DeadReason.MALFORMED, why) for line, why in block.bad]
    per_unit = NS_PER_UNIT[unit]
    in_range = (block.time >= MIN_TS_NS // per_unit) & (block.time < MAX_TS_NS // per_unit)
    for r in np.flatnonzero(~in_range).tolist():
        why = f"time={int(block.time[r])} {unit} is outside 2017-01-01..2200-01-01"
        refused.append((int(block.line[r]), DeadReason.BAD_TIME, why))
    refused.sort(key=lambda x: x[0])  # file order
    dead = [letter(reason, line, why) for line, reason, why in refused]
    keep = np.flatnonzero(in_range)
    side = np.where(block.buyer_maker[keep], np.int8(Side.SELL), np.int8(Side.BUY))
    rows = _Rows(
        block,
        spec,
        first_line,
        symbol_id,
        block.line[keep],
        block.time[keep] * np.int64(per_unit),
        block.price[keep],
        block.qty[keep],
        side.astype(np.int8),
        block.trade_id[keep],
    )
    return _Step(rows, dead)


def _keyed(steps: Iterator[_Step]) -> Iterator[_Step]:
    """Give rows a merge key: the running maximum of the symbol's times.

    The key never decreases along a symbol's rows, so merging by it keeps each symbol's own
    order (a row that goes back in time stays where it was, for the validator to refuse)
    while the symbols interleave in time.
    """
    high = np.iinfo(np.int64).min
    for step in steps:
        if step.rows is not None and len(step.rows):
            key = np.maximum.accumulate(np.maximum(step.rows.ts_ns, high))
            step.rows.key = key
            high = int(key[-1])
        yield step


def _merge(streams: list[Iterator[_Step]]) -> Iterator[tuple[list[_Rows], list[_Letter]]]:
    """K-way merge by block: each step releases every row up to the lowest pending key.

    Each stream holds at most one block, so memory stays at (symbols x chunk_rows) rows. The
    lowest "last key" of the held blocks is a watermark no stream can go below any more;
    every stream gives its rows up to it, and the stream that set it reads its next block.
    """
    pending: dict[int, _Rows] = {}
    live = list(range(len(streams)))
    while True:
        dead: list[_Letter] = []
        for i in list(live):
            while i not in pending:
                step = next(streams[i], None)
                if step is None:
                    live.remove(i)
                    break
                dead.extend(step.dead)
                if step.rows is not None and len(step.rows):
                    pending[i] = step.rows
        if not live:
            if dead:
                yield [], dead
            return
        mark = min(int(pending[i].key[-1]) for i in live)
        parts = []
        for i in live:
            rows = pending[i]
            cut = int(np.searchsorted(rows.key, mark, side="right"))
            if cut:
                parts.append(rows.take(slice(0, cut)))
                if cut == len(rows):
                    del pending[i]
                else:
                    pending[i] = rows.take(slice(cut, None))
        yield parts, dead


class _RawLines:
    """``raw`` for the validator: the CSV line of a merged row; remembers rows asked for."""

    def __init__(self, parts: list[_Rows], part: np.ndarray, index: np.ndarray) -> None:
        self.parts, self.part, self.index = parts, part, index
        self.asked: list[int] = []

    def __call__(self, row: int) -> str:
        self.asked.append(row)
        rows = self.parts[int(self.part[row])]
        return rows.block.text(int(rows.line[int(self.index[row])]))

    def where(self, row: int) -> tuple[_FileSpec, int]:
        """The file and line number of a merged row."""
        rows = self.parts[int(self.part[row])]
        return rows.spec, rows.first_line + int(rows.line[int(self.index[row])])


# ----------------------------------------------------------------------------- the feed


class BinanceCsvFeed(IterableFeed):
    """Binance public trade dumps as a feed (see the module doc for the rules).

    ``paths``: one or more ``.csv``/``.zip`` files, checked and inspected (symbol, layout,
    header) here, so a missing or unreadable file fails at once with its name. ``symbol``
    overrides the name taken from the file names (for all files); ``layout`` (a
    :class:`Layout` or its name) and ``header`` override detection; ``time_unit`` is
    ``"auto"``, ``"ms"`` or ``"us"``. ``chunk_rows`` lines are parsed at a time (the memory
    bound), read from the file ``read_bytes`` at a time. ``detect_gaps`` reports missing trade
    ids (Binance's are consecutive per symbol). A feed is read once.
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        symbol: str | None = None,
        layout: Layout | str | None = None,
        header: bool | None = None,
        time_unit: str = "auto",
        chunk_rows: int = 65_536,
        symbols: SymbolTable | None = None,
        detect_gaps: bool = True,
        speed: float | None = None,
        clock: Clock | None = None,
        slice_ms: float = 1.0,
        read_bytes: int = 1 << 20,
    ) -> None:
        super().__init__(speed=speed, clock=clock, slice_ms=slice_ms)
        files = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
        if not files:
            raise ValueError("BinanceCsvFeed needs at least one file")
        if time_unit not in ("auto", *NS_PER_UNIT):
            raise ValueError(f"time_unit must be 'auto', 'ms' or 'us', got {time_unit!r}")
        if not (isinstance(chunk_rows, int) and chunk_rows > 0):
            raise ValueError(f"chunk_rows must be an int > 0, got {chunk_rows!r}")
        if isinstance(layout, str):
            if layout not in LAYOUTS:
                raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
            layout = LAYOUTS[layout]
        for path in files:  # fail before any reading if a file is missing
            if not path.is_file():
                raise FileNotFoundError(f"binance csv: {path}: no such file")
        self.files = [
            replace(_inspect(p, symbol, layout, header), index=i) for i, p in enumerate(files)
        ]
        names = [f.name for f in self.files]
        more = f" (+{len(names) - 1} more)" if len(names) > 1 else ""
        self.source = SOURCE_PREFIX + names[0] + more
        self.symbols = symbols if symbols is not None else SymbolTable()
        for spec in self.files:
            self.symbols.add(spec.symbol)
        self.validator = TickValidator(
            symbols=self.symbols, source=self.source, clock=self.clock, detect_gaps=detect_gaps
        )
        self._opts = _Options(chunk_rows, time_unit, max(1, int(read_bytes)), self.clock)
        self._counts = _Counts()
        self._started = False

    def iter_chunks(self) -> Iterator[FeedChunk]:
        if self._started:
            raise RuntimeError(f"{self.source} was already read; make a new feed to read again")
        self._started = True
        for parts, dead in _merge(self._streams()):
            for _, letter in dead:
                self.validator.count_dead(letter.reason)
            ticks, found, gaps = self._validate(parts)
            if len(ticks) or dead or found:
                letters = [x for _, x in sorted(dead + found, key=lambda x: x[0])]  # file order
                yield FeedChunk(ticks, letters, gaps)

    def stats(self) -> dict:
        """Rows read, ticks accepted, dead letters by reason, gaps, files done, time units."""
        counters = self.validator.counters()
        return {
            "rows": self._counts.rows,
            "ticks": counters["accepted"],
            "dead": counters["dead"],
            "gaps": counters["gaps"],
            "missing_trade_ids": counters["missing_trade_ids"],
            "files_done": self._counts.files_done,
            "files": len(self.files),
            "time_units": dict(self._counts.units),
        }

    def _streams(self) -> list[Iterator[_Step]]:
        by_symbol: dict[str, list[_FileSpec]] = {}
        for spec in self.files:
            by_symbol.setdefault(spec.symbol, []).append(spec)
        return [_keyed(self._symbol_steps(specs)) for specs in by_symbol.values()]

    def _symbol_steps(self, specs: list[_FileSpec]) -> Iterator[_Step]:
        for spec in specs:
            sid = self.symbols.id(spec.symbol)
            yield from _read_file(spec, sid, self._opts, self._counts)

    def _validate(self, parts: list[_Rows]) -> tuple[TickBatch, list[_Letter], list[Gap]]:
        if not parts:
            return TickBatch.empty(), [], []
        sizes = [len(p) for p in parts]
        part = np.repeat(np.arange(len(parts)), sizes)
        index = np.concatenate([np.arange(n) for n in sizes])
        batch = TickBatch(
            symbol_id=np.repeat(np.array([p.symbol_id for p in parts], np.int32), sizes),
            ts_ns=np.concatenate([p.ts_ns for p in parts]),
            price=np.concatenate([p.price for p in parts]),
            qty=np.concatenate([p.qty for p in parts]),
            side=np.concatenate([p.side for p in parts]),
            trade_id=np.concatenate([p.trade_id for p in parts]),
        )
        if len(parts) > 1:
            order = np.argsort(np.concatenate([p.key for p in parts]), kind="stable")
            batch, part, index = batch.take(order), part[order], index[order]
        raw = _RawLines(parts, part, index)
        result = self.validator.validate(batch, raw)
        return result.ticks, _locate(result.dead, raw), result.gaps


def _locate(dead: list[DeadLetter], raw: _RawLines) -> list[_Letter]:
    """Name each validator dead letter's file and line.

    The validator builds one dead letter per refused row, in row order, asking ``raw`` for
    each; ``raw.asked`` therefore pairs with ``dead``. Should that ever not hold, the letters
    go out as the validator made them (sorted last) rather than with a wrong line.
    """
    if len(raw.asked) != len(dead):
        return [((2**62, i), letter) for i, letter in enumerate(dead)]
    out: list[_Letter] = []
    for letter, row in zip(dead, raw.asked, strict=True):
        spec, line = raw.where(row)
        detail = f"line {line}: {letter.detail}"
        out.append(((spec.index, line), replace(letter, source=spec.source, detail=detail)))
    return out
