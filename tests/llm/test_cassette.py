"""Cassettes: record, replay, strict replay, corrupt files, concurrent appends."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel

from tripwire.llm.base import (
    LLMError,
    LLMRequest,
    Message,
    Provider,
    ProviderError,
    ProviderResult,
    Usage,
)
from tripwire.llm.cassette import (
    CassetteError,
    CassetteMiss,
    CassetteProvider,
    load_cassette,
)


class Echo(BaseModel):
    text: str


def req(text: str = "hi", role: str = "echo") -> LLMRequest:
    return LLMRequest(role=role, system="Repeat.", messages=(Message("user", text),), schema=Echo)


class Inner:
    """Answers with the user's text; records what it was asked."""

    kind, model = "fake", "fake-1"

    def __init__(self, fail: ProviderError | None = None, pause: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail
        self.pause = pause
        self.closed = False

    async def complete(self, request: LLMRequest, *, timeout_s: float) -> ProviderResult:
        self.calls.append(request.messages[-1].content)
        if self.pause:
            await asyncio.sleep(0)  # let the other coroutines interleave
        if self.fail is not None:
            raise self.fail
        text = request.messages[-1].content
        return ProviderResult({"text": text}, json.dumps({"text": text}), Usage(7, 3),
                              self.model, 42.0, self.kind)  # fmt: skip

    async def aclose(self) -> None:
        self.closed = True


def call(provider: CassetteProvider, request: LLMRequest) -> ProviderResult:
    return asyncio.run(provider.complete(request, timeout_s=5.0))


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "cassettes" / "calls.jsonl"


def record(path: Path, *texts: str) -> Inner:
    inner = Inner()
    cassette = CassetteProvider(inner, path, "record")
    for t in texts:
        call(cassette, req(t))
    return inner


# ----------------------------------------------------------------------------- modes


def test_record_then_strict_replay_gives_the_same_answer_without_the_inner(path):
    inner = record(path, "one", "two")
    assert inner.calls == ["one", "two"]
    strict = CassetteProvider(None, path, "strict")
    assert isinstance(strict, Provider) and strict.kind == "cassette" and len(strict) == 2
    out = call(strict, req("two"))
    assert out.data == {"text": "two"} and out.raw_text == '{"text": "two"}'
    assert out.usage == Usage(7, 3) and out.model == "fake-1"
    assert out.source == "cassette:fake" and out.latency_ms == 0.0
    assert req("two").fingerprint() in strict and strict.hits == 1


def test_replay_can_report_the_recorded_latency(path):
    record(path, "one")
    out = call(CassetteProvider(None, path, "replay", replay_latency="recorded"), req("one"))
    assert out.latency_ms == 42.0


def test_record_mode_always_asks_and_the_last_answer_wins(path):
    inner = record(path, "one", "one")
    assert inner.calls == ["one", "one"]
    assert len(path.read_text().splitlines()) == 2 and len(load_cassette(path)) == 1


def test_strict_replay_of_an_unknown_request_is_an_error_not_a_fallback(path):
    record(path, "one")
    inner = Inner()
    strict = CassetteProvider(inner, path, "strict")
    with pytest.raises(CassetteMiss, match="no recorded answer for role 'echo'") as err:
        call(strict, req("never recorded"))
    assert inner.calls == []  # the inner provider is not a silent fallback
    assert isinstance(err.value, LLMError) and not isinstance(err.value, ProviderError)
    assert err.value.fingerprint == req("never recorded").fingerprint()
    assert str(path) in str(err.value) and strict.misses == 1


def test_replay_asks_the_inner_for_unknown_requests_and_keeps_the_answer(path):
    record(path, "one")
    inner = Inner()
    replay = CassetteProvider(inner, path, "replay")
    assert call(replay, req("one")).source == "cassette:fake"
    fresh = call(replay, req("new"))
    assert fresh.source == "fake" and inner.calls == ["new"]
    assert call(CassetteProvider(None, path, "strict"), req("new")).data == {"text": "new"}


def test_replay_without_an_inner_raises_on_a_miss(path):
    with pytest.raises(CassetteMiss):
        call(CassetteProvider(None, path, "replay"), req("x"))  # no file yet: all misses


def test_a_failing_inner_call_propagates_and_records_nothing(path):
    inner = Inner(fail=ProviderError("overloaded", "529", status=529))
    cassette = CassetteProvider(inner, path, "record")
    with pytest.raises(ProviderError, match="overloaded"):
        call(cassette, req())
    assert not path.exists() and cassette.recorded == 0


def test_bad_arguments(path):
    with pytest.raises(ValueError, match="needs an inner provider"):
        CassetteProvider(None, path, "record")
    with pytest.raises(ValueError, match="must be one of record, replay, strict"):
        CassetteProvider(Inner(), path, "play")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="replay_latency"):
        CassetteProvider(Inner(), path, "replay", replay_latency="real")  # type: ignore[arg-type]
    with pytest.raises(CassetteError, match="no such cassette"):
        CassetteProvider(None, path, "strict")


def test_aclose_closes_the_inner_and_repr_is_short(path):
    inner = Inner()
    cassette = CassetteProvider(inner, path, "record")
    asyncio.run(cassette.aclose())
    assert inner.closed
    assert repr(cassette) == (
        f"CassetteProvider(path={str(path)!r}, mode='record', inner='fake:fake-1', records=0)"
    )
    asyncio.run(CassetteProvider(None, path, "replay").aclose())  # nothing to close


def test_a_replayed_answer_is_a_private_copy(path):
    record(path, "one")
    strict = CassetteProvider(None, path, "strict")
    call(strict, req("one")).data["text"] = "mutated"
    assert call(strict, req("one")).data == {"text": "one"}


def test_the_rules_analyst_replays_bit_for_bit(path):
    from tests.llm.test_rules import news_incident
    from tripwire.llm.rules import RulesProvider
    from tripwire.llm.schemas import TriageVerdict

    request = LLMRequest(role="triage-analyst", system="s", messages=(Message("user", "u"),),
                         schema=TriageVerdict, context=news_incident().to_context())  # fmt: skip
    live = call(CassetteProvider(RulesProvider(), path, "record"), request)
    again = call(CassetteProvider(None, path, "strict"), request)
    assert (again.data, again.raw_text, again.source) == (live.data, live.raw_text,
                                                          "cassette:rules")  # fmt: skip


# ----------------------------------------------------------------------------- the file


def test_one_json_line_per_record(path):
    record(path, "one")
    (line,) = path.read_text(encoding="utf-8").splitlines()
    doc = json.loads(line)
    assert (
        doc["v"] == 1 and doc["role"] == "echo" and doc["fingerprint"] == req("one").fingerprint()
    )
    assert doc["result"] == {
        "data": {"text": "one"}, "raw_text": '{"text": "one"}',
        "usage": {"input_tokens": 7, "output_tokens": 3}, "model": "fake-1", "latency_ms": 42.0,
        "source": "fake",
    }  # fmt: skip


def _good_line(text: str = "one") -> dict:
    return {"v": 1, "fingerprint": req(text).fingerprint(), "role": "echo",
            "result": {"data": {"text": text}, "raw_text": "{}", "model": "m",
                       "usage": {"input_tokens": 1, "output_tokens": 1}, "latency_ms": 1.0,
                       "source": "fake"}}  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("{not json", "Expecting property name"),
        ("[1]", "a record must be a JSON object"),
        (json.dumps({**_good_line(), "v": 2}), "unknown format version 2"),
        (json.dumps({**_good_line(), "fingerprint": "abc"}), "not 64 lower-case hex"),
        (json.dumps({**_good_line(), "result": {}}), "result.usage is missing"),
        (json.dumps({**_good_line(), "result": {**_good_line()["result"], "latency_ms": True}}),
         "result.latency_ms is missing or not int or float"),
        (json.dumps({**_good_line(), "result": {**_good_line()["result"],
                     "usage": {"input_tokens": -1, "output_tokens": 0}}}), "must be >= 0"),
    ],
)  # fmt: skip
def test_a_corrupt_line_names_the_file_and_the_line(path, bad, problem):
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_good_line()) + "\n\n" + bad + "\n" + json.dumps(_good_line("x"))
                    + "\n", encoding="utf-8")  # fmt: skip
    with pytest.raises(CassetteError, match=f"{path}:3: not a cassette record: .*" + problem):
        CassetteProvider(None, path, "strict")


def test_a_last_line_cut_short_says_so(path):
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_good_line()) + "\n" + json.dumps(_good_line("x"))[:50])
    with pytest.raises(CassetteError, match=r":2: .*the last line is incomplete"):
        load_cassette(path)


def test_an_unreadable_or_binary_file(path, tmp_path):
    with pytest.raises(CassetteError, match="cannot read"):
        load_cassette(tmp_path)  # a directory
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CassetteError, match="not UTF-8"):
        load_cassette(path)


def test_an_unrecordable_answer_is_a_cassette_error(path):
    class Odd(Inner):
        async def complete(self, request, *, timeout_s):
            return ProviderResult({"when": object()}, "", Usage(), "m", 1.0, "odd")

    with pytest.raises(CassetteError, match="cannot record"):
        call(CassetteProvider(Odd(), path, "record"), req())


# ----------------------------------------------------------------------------- concurrency


def _assert_lines(path: Path, expected: set[str]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(expected)
    assert {json.loads(line)["result"]["data"]["text"] for line in lines} == expected


def test_concurrent_coroutines_append_whole_lines(path):
    cassette = CassetteProvider(Inner(pause=True), path, "record")

    async def many():
        await asyncio.gather(*(cassette.complete(req(f"c{i}"), timeout_s=5) for i in range(300)))

    asyncio.run(many())
    _assert_lines(path, {f"c{i}" for i in range(300)})
    assert cassette.recorded == 300 and len(load_cassette(path)) == 300


def test_concurrent_threads_append_whole_lines(path):
    cassette = CassetteProvider(Inner(), path, "record")
    big = "x" * 70_000  # larger than a pipe buffer: one write must still be one line

    def worker(k: int) -> None:
        for i in range(50):
            call(cassette, req(f"t{k}-{i}-{big if i % 10 == 0 else ''}"))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _assert_lines(path, {f"t{k}-{i}-{big if i % 10 == 0 else ''}"
                         for k in range(4) for i in range(50)})  # fmt: skip


def _record_in_process(path: str, k: int) -> None:
    cassette = CassetteProvider(Inner(), path, "record")
    for i in range(100):
        call(cassette, req(f"p{k}-{i}-" + "y" * (i * 500)))


@pytest.mark.timeout(60)
def test_concurrent_processes_append_whole_lines(path):
    path.parent.mkdir(parents=True)
    # spawn, not fork: the test process may already run Ray's and gRPC's threads (other
    # tests), and a forked copy of a process with threads can hang.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_record_in_process, args=(str(path), k)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    _assert_lines(path, {f"p{k}-{i}-" + "y" * (i * 500) for k in range(3) for i in range(100)})


def test_a_strict_miss_stops_the_router_instead_of_failing_over(path):
    # Regression: the router turned any non-provider error into a retryable "server"
    # failure, so a strict cassette's miss was retried and then answered by the next route.
    from tripwire.llm.ledger import InMemoryLedger
    from tripwire.llm.router import Route, Router

    class Answers:
        kind, model = "fallback", "fallback-v1"
        calls = 0

        async def complete(self, request, *, timeout_s):
            Answers.calls += 1
            return ProviderResult({"text": "fallback"}, "{}", Usage(), self.model, 0.0, "x")

        async def aclose(self):
            return None

    record(path, "recorded")  # a cassette exists, but not for the request below
    strict = CassetteProvider(None, path, mode="strict")
    router = Router([Route("replay", strict), Route("other", Answers())],
                    ledger=InMemoryLedger(), cache=None)
    with pytest.raises(CassetteMiss):
        asyncio.run(router.call(req("never recorded")))
    assert Answers.calls == 0
