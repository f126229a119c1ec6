"""Cassettes: real LLM calls recorded once, replayed for reproducible backtests and demos.

A :class:`CassetteProvider` wraps another provider and a JSON-lines file of
``request fingerprint -> ProviderResult`` (the fingerprint is
:meth:`tripwire.llm.base.LLMRequest.fingerprint`: role, prompt, schema, limits):

``record``
    every call goes to the inner provider and its result is appended to the file;
``replay``
    a known fingerprint is answered from the file, without a network; an unknown one goes
    to the inner provider and is appended (so the next run replays it), or raises
    :class:`CassetteMiss` when there is no inner provider;
``strict``
    a known fingerprint is answered from the file; an unknown one raises
    :class:`CassetteMiss`, never a silent fallback: a backtest that asks a question its
    cassette has no answer to is wrong, and must say so.

:class:`CassetteMiss` and :class:`CassetteError` derive from
:class:`~tripwire.llm.base.LLMError`, *not* from :class:`~tripwire.llm.base.ProviderError`:
the router fails over on provider errors, and a miss must stop the run instead of being
answered by the next route. A replayed result reports ``source`` ``"cassette:<recorded
source>"`` and a latency of 0 (or the recorded one, ``replay_latency="recorded"``).

One line per record, appended with a single ``write`` under an exclusive ``flock`` on a file
opened with ``O_APPEND``, so concurrent coroutines, threads and processes never interleave
lines. When a fingerprint appears twice the last line wins. A line that is not a valid
record (e.g. one cut short by a crash) is an error naming the file and the line.

>>> import asyncio, tempfile
>>> from pydantic import BaseModel
>>> from tripwire.llm.base import LLMRequest, Message, ProviderResult, Usage
>>> class Echo(BaseModel):
...     text: str
>>> class Fixed:
...     kind, model = "fixed", "fixed-1"
...     async def complete(self, request, *, timeout_s):
...         return ProviderResult({"text": "hi"}, '{"text":"hi"}', Usage(3, 2), self.model, 12.5,
...                               self.kind)
...     async def aclose(self): ...
>>> path = tempfile.mkdtemp() + "/calls.jsonl"
>>> req = LLMRequest(role="echo", system="Repeat.", messages=(Message("user", "hi"),),
...                  schema=Echo)
>>> asyncio.run(CassetteProvider(Fixed(), path, "record").complete(req, timeout_s=5)).source
'fixed'
>>> again = asyncio.run(CassetteProvider(None, path, "strict").complete(req, timeout_s=5))
>>> again.data, again.source, again.latency_ms, again.usage
({'text': 'hi'}, 'cassette:fixed', 0.0, Usage(input_tokens=3, output_tokens=2))
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Literal

from tripwire.llm.base import LLMError, LLMRequest, Provider, ProviderResult, Usage

Mode = Literal["record", "replay", "strict"]
MODES: tuple[str, ...] = ("record", "replay", "strict")
FORMAT_VERSION = 1
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class CassetteError(LLMError):
    """A cassette file cannot be used: unreadable, or a line that is not a valid record."""


class CassetteMiss(LLMError):
    """Replay met a request the cassette has no answer for (strict, or no inner provider).

    Not a ProviderError on purpose: the router must not fail over to another route."""

    def __init__(self, path: Path, fingerprint: str, role: str) -> None:
        super().__init__(
            f"{path}: no recorded answer for role {role!r}, request fingerprint "
            f"{fingerprint[:16]}... (record it first: mode='record' with a real provider)"
        )
        self.path = path
        self.fingerprint = fingerprint
        self.role = role


# ----------------------------------------------------------------------------- records


def _record_line(fingerprint: str, role: str, result: ProviderResult) -> bytes:
    doc = {
        "v": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "role": role,
        "result": {
            "data": result.data,
            "raw_text": result.raw_text,
            "usage": {
                "input_tokens": result.usage.input_tokens,
                "output_tokens": result.usage.output_tokens,
            },
            "model": result.model,
            "latency_ms": result.latency_ms,
            "source": result.source,
        },
    }
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8")


def _field(doc: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, types):  # no field here is a bool
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise ValueError(f"{where}{key} is missing or not {names}")
    return value


def _parse_record(line: str) -> tuple[str, ProviderResult]:
    doc = json.loads(line)
    if not isinstance(doc, dict):
        raise ValueError("a record must be a JSON object")
    if doc.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown format version {doc.get('v')!r} (expected {FORMAT_VERSION})")
    fp = _field(doc, "fingerprint", str, "")
    if not _FINGERPRINT.match(fp):
        raise ValueError("fingerprint is not 64 lower-case hex digits")
    res = _field(doc, "result", dict, "")
    usage = _field(res, "usage", dict, "result.")
    tokens = [_field(usage, k, int, "result.usage.") for k in ("input_tokens", "output_tokens")]
    if min(tokens) < 0:
        raise ValueError("result.usage token counts must be >= 0")
    result = ProviderResult(
        data=_field(res, "data", dict, "result."),
        raw_text=_field(res, "raw_text", str, "result."),
        usage=Usage(*tokens),
        model=_field(res, "model", str, "result."),
        latency_ms=float(_field(res, "latency_ms", (int, float), "result.")),
        source=_field(res, "source", str, "result."),
    )
    return fp, result


def load_cassette(path: str | Path) -> dict[str, ProviderResult]:
    """fingerprint -> result, the last line winning; CassetteError naming the bad line."""
    path = Path(path)
    try:
        # A shared flock: writers append under an exclusive one, so a reader never sees
        # half of another process's line.
        with path.open("rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
            raw = fh.read()
    except OSError as exc:
        raise CassetteError(f"{path}: cannot read the cassette: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CassetteError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    out: dict[str, ProviderResult] = {}
    lines = text.split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            fp, result = _parse_record(line)
        except (ValueError, TypeError) as exc:
            hint = ""
            if lineno == len(lines) and not text.endswith("\n"):
                hint = " (the last line is incomplete: a write cut short? remove it)"
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise CassetteError(f"{path}:{lineno}: not a cassette record: {msg}{hint}") from None
        out[fp] = result
    return out


# ----------------------------------------------------------------------------- provider


class CassetteProvider:
    """Record/replay wrapper around ``inner`` (see the module docstring for the modes)."""

    kind = "cassette"

    def __init__(
        self,
        inner: Provider | None,
        path: str | Path,
        mode: Mode = "record",
        *,
        replay_latency: Literal["zero", "recorded"] = "zero",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"cassette mode must be one of {', '.join(MODES)}, got {mode!r}")
        if replay_latency not in ("zero", "recorded"):
            raise ValueError(f"replay_latency must be 'zero' or 'recorded', got {replay_latency!r}")
        if mode == "record" and inner is None:
            raise ValueError("a recording cassette needs an inner provider to record from")
        self.inner = inner
        self.path = Path(path)
        self.mode: Mode = mode
        self.model = inner.model if inner is not None else "cassette"
        self._recorded_latency = replay_latency == "recorded"
        if self.path.exists():
            self._entries = load_cassette(self.path)
        elif mode == "strict":
            raise CassetteError(f"{self.path}: no such cassette (strict replay needs one)")
        else:
            self._entries = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.recorded = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, fingerprint: object) -> bool:
        return fingerprint in self._entries

    async def complete(self, request: LLMRequest, *, timeout_s: float) -> ProviderResult:
        fp = request.fingerprint()
        if self.mode != "record":
            stored = self._entries.get(fp)
            if stored is not None:
                self.hits += 1
                return self._replayed(stored)
            self.misses += 1
            if self.mode == "strict" or self.inner is None:
                raise CassetteMiss(self.path, fp, request.role)
        assert self.inner is not None  # record mode always has one (checked at construction)
        result = await self.inner.complete(request, timeout_s=timeout_s)
        self._append(fp, request.role, result)
        return result

    def _replayed(self, stored: ProviderResult) -> ProviderResult:
        return ProviderResult(
            data=copy.deepcopy(stored.data),  # a private copy: callers may mutate it
            raw_text=stored.raw_text,
            usage=stored.usage,
            model=stored.model,
            latency_ms=stored.latency_ms if self._recorded_latency else 0.0,
            source=f"cassette:{stored.source}",
        )

    def _append(self, fingerprint: str, role: str, result: ProviderResult) -> None:
        """One record, one write, under the thread lock and an exclusive flock.

        Synchronous on purpose: a few hundred bytes to a local file, and no ``await``
        between the write and the index update keeps coroutines from seeing half of it."""
        try:
            line = _record_line(fingerprint, role, result)
        except (TypeError, ValueError) as exc:
            raise CassetteError(f"{self.path}: cannot record a result: {exc}") from None
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)  # also releases the flock
            self._entries[fingerprint] = result
            self.recorded += 1

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()

    def __repr__(self) -> str:
        inner = f"{self.inner.kind}:{self.inner.model}" if self.inner is not None else None
        return (
            f"CassetteProvider(path={str(self.path)!r}, mode={self.mode!r}, inner={inner!r}, "
            f"records={len(self._entries)})"
        )
