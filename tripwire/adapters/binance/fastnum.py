"""The vectorised number and boolean parser behind the Binance CSV loader's fast path.

Whole lines of a comma-separated block are located by their separators and their fields
turned into numbers with NumPy on the raw bytes: digits become integers eight at a time with
the SWAR trick, decimals of up to 16 significant digits are exact (mantissa / 10**k with
exact powers). It accepts only a strict subset of the grammar of record
(:func:`tripwire.adapters.binance.loader.parse_line`) and says, per line, whether the line
fitted; the loader re-parses the others one by one, so the values never depend on which
path read a line.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class ColumnKinds(Protocol):
    """What the parser needs of a CSV layout: ``kinds``, one letter per column (``i``
    integer, ``d`` decimal, ``b`` boolean)."""

    kinds: str


# The fast path looks at the raw bytes. Every byte below '.' (0x2E) counts as a separator, so
# a line holding a sign, a blank, a CR or a control byte has the wrong field count and goes to
# the slow path; a fast line contains only field bytes, ',' and its '\n'.
_SEP_BELOW = ord(".")
_COMMA, NL, _DOT, _ZERO = ord(","), ord("\n"), ord("."), ord("0")
_W = 17  # bytes looked at per number, right-aligned: 16 digits and a dot
_PAD = 32  # zero bytes around the block, so windows never leave the buffer
_POW10 = 10.0 ** np.arange(17)  # exact powers: m / 10**k is then correctly rounded
_EXACT = 2**53  # mantissas below this convert to float64 exactly
_WORD = {k: int.from_bytes(k.encode(), "little") for k in ("True", "true", "Fals", "fals")}
_KEEP = np.array([(2**64 - 1) ^ (2 ** (8 * k) - 1) for k in range(9)], dtype=np.uint64)
_ASCII_ZEROS = np.uint64(0x3030303030303030)
_SIXES = np.uint64(0x0606060606060606)  # + 6 carries a digit's high nibble out of 3 only if > 9


def structure(a: np.ndarray, ncols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line ends, the lines with exactly ``ncols`` comma-separated fields, their field ends."""
    sep = np.flatnonzero(a < _SEP_BELOW)
    kinds = a[sep]
    if len(sep) % ncols == 0:
        grid = kinds.reshape(-1, ncols)
        if (grid[:, :-1] == _COMMA).all() and (grid[:, -1] == NL).all():
            ends = sep.reshape(-1, ncols)
            return ends[:, -1].copy(), np.arange(len(ends)), ends
    nl = np.flatnonzero(kinds == NL)
    prev = np.concatenate([[-1], nl[:-1]])
    commas = np.concatenate([[0], np.cumsum(kinds == _COMMA)])
    n_commas = commas[nl] - commas[prev + 1]
    rows = np.flatnonzero((nl - prev - 1 == ncols - 1) & (n_commas == ncols - 1))
    ends = sep[nl[rows][:, None] + np.arange(1 - ncols, 1)]
    return sep[nl], rows, ends


def field_starts(line_end: np.ndarray, rows: np.ndarray, ends: np.ndarray) -> np.ndarray:
    starts = np.empty_like(ends)
    starts[:, 1:] = ends[:, :-1] + 1
    starts[:, 0] = np.where(rows > 0, line_end[rows - 1] + 1, 0)
    return starts


def parse_fast(
    a: np.ndarray, starts: np.ndarray, ends: np.ndarray, layout: ColumnKinds
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Vectorised parse of well-shaped lines: which ones fit the fast grammar, and values."""
    buf = np.zeros(len(a) + 2 * _PAD, dtype=np.uint8)
    buf[_PAD : _PAD + len(a)] = a
    numbers = sliding_window_view(buf, _W)
    words = sliding_window_view(buf, 8)
    lengths = ends - starts
    ok = np.ones(len(ends), dtype=bool)
    values: list[np.ndarray] = []
    for col, kind in enumerate(layout.kinds):
        if kind == "b":
            flag, fits = _booleans(words[starts[:, col] + _PAD], lengths[:, col])
        else:
            field = numbers[ends[:, col] + _PAD - _W]
            flag, fits = _number(field, lengths[:, col], decimal=kind == "d")
        ok &= fits
        values.append(flag)
    picked = [values[0], values[1], values[2], values[layout.time_col], values[layout.side_col]]
    return ok, picked


def _number(
    field: np.ndarray, lengths: np.ndarray, *, decimal: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned fields (n, 17) -> values and which rows are plain ``\\d+(\\.\\d*)?``.

    The dot's column is taken out of the window, which leaves the digits right-aligned in 16
    bytes, i.e. two uint64 words; the bytes left of the field (the line's earlier fields) are
    overwritten with '0' in the words, then each word is checked and converted at once.
    """
    n = len(field)
    mantissa = np.zeros(n, dtype=np.uint64)
    frac = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    for rows, col in _dot_columns(field, decimal):
        part = field if rows is None else field[rows]
        length = lengths if rows is None else lengths[rows]
        has_dot = (part[:, col] == _DOT) & (col >= _W - length) if decimal else False
        digits = np.concatenate((part[:, :col], part[:, col + 1 :]), axis=1)
        words = digits.view("<u8")
        n_digits = length - has_dot
        high = _as_digits(words[:, 0], 16 - n_digits)
        low = _as_digits(words[:, 1], 8 - n_digits)
        good = _all_digits(high) & _all_digits(low) & (n_digits >= 1) & (n_digits <= _W - 1)
        where = slice(None) if rows is None else rows
        mantissa[where] = _eight_digits(high) * np.uint64(10**8) + _eight_digits(low)
        frac[where] = np.where(has_dot, _W - 1 - col, 0)
        ok[where] = good
    if not decimal:
        return mantissa.astype(np.int64), ok
    ok &= mantissa < _EXACT
    return mantissa.astype(np.float64) / _POW10[frac], ok


def _dot_columns(field: np.ndarray, decimal: bool) -> list[tuple[np.ndarray | None, int]]:
    """Rows (None: all) and the window column to drop for them: the field's dot, if any.

    Dropping a column left of the field is harmless, so rows without a dot drop column 0.
    Binance writes a fixed number of decimals per column, so one column usually fits all.
    """
    if not decimal or len(field) == 0:
        return [(None, 0)]
    dots = np.flatnonzero(field[0] == _DOT)
    if len(dots) and (field[:, dots[-1]] == _DOT).all():
        return [(None, int(dots[-1]))]
    is_dot = field[:, ::-1] == _DOT
    cols = np.where(is_dot.any(axis=1), _W - 1 - is_dot.argmax(axis=1), 0)
    return [(np.flatnonzero(cols == c), int(c)) for c in np.unique(cols)]


def _as_digits(word: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """Set a word's first ``pad`` bytes (clipped to 0..8) to '0': they precede the field."""
    keep = _KEEP[np.clip(pad, 0, 8)]
    return (word & keep) | (_ASCII_ZEROS & ~keep)


def _all_digits(word: np.ndarray) -> np.ndarray:
    """Whether all eight bytes of each word are ASCII digits."""
    high = np.uint64(0xF0F0F0F0F0F0F0F0)
    return ((word & high) == _ASCII_ZEROS) & (((word + _SIXES) & high) == _ASCII_ZEROS)


def _eight_digits(word: np.ndarray) -> np.ndarray:
    """Eight ASCII digits per uint64 (first digit in the low byte) -> their value (SWAR)."""
    word = word & np.uint64(0x0F0F0F0F0F0F0F0F)
    word = (word * np.uint64(10 * 256 + 1)) >> np.uint64(8)
    word = ((word & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(100 * 65536 + 1)) >> np.uint64(16)
    word = ((word & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(10000 * 2**32 + 1)) >> np.uint64(32)
    return word


def _booleans(head: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fields' first 8 bytes (n, 8) -> value and which rows hold exactly True/False/true/false."""
    first4 = np.ascontiguousarray(head).view("<u4")[:, 0]
    true = (lengths == 4) & ((first4 == _WORD["True"]) | (first4 == _WORD["true"]))
    false = (
        (lengths == 5)
        & ((first4 == _WORD["Fals"]) | (first4 == _WORD["fals"]))
        & (head[:, 4] == ord("e"))
    )
    return true, true | false
