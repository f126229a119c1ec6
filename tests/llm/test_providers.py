"""The HTTP providers through the real SDKs against loopback servers speaking each protocol.

Each test starts an :class:`AnthropicServer` or :class:`OpenAIServer` on 127.0.0.1 with a
script of replies, calls the provider, and asserts on what came back (data, usage, model,
latency, typed errors) and on what the server received (body shape, headers, how many
requests: the SDKs' own retries must stay off, the router owns retries).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from tests.llm.servers import (
    PROSE,
    AnthropicServer,
    OpenAIServer,
    Reply,
    drop,
    garbage,
    invalid,
    malformed,
    ok,
    slow,
    status,
    truncated,
)
from tripwire.llm.base import LLMRequest, Message, Provider, ProviderError
from tripwire.llm.providers import (
    AnthropicProvider,
    MissingCredentials,
    OpenAIProvider,
    parse_retry_after,
)
from tripwire.llm.providers.openai import strict_form, without_bounds
from tripwire.llm.schemas import TriageVerdict

pytestmark = pytest.mark.timeout(60)

KEY = "sk-test-7f3a9c1e5b2d8k4q"  # must reach the server, never a log, an error or a repr


class Verdict(BaseModel):
    """A triage verdict."""

    model_config = ConfigDict(extra="forbid")

    classification: Literal[
        "TECHNICAL_SPIKE",
        "NEWS_DRIVEN",
        "MANIPULATION",
        "LIQUIDATION_CASCADE",
        "DATA_ERROR",
        "IGNORE",
    ]
    confidence: float = Field(ge=0, le=1)
    reasoning: str
    key_factors: list[str]


class Tagged(BaseModel):
    """An answer with a default: not strict-mode material."""

    model_config = ConfigDict(extra="forbid")

    label: str
    source: str = "llm"


VERDICT = {
    "classification": "NEWS_DRIVEN",
    "confidence": 0.8,
    "reasoning": "Exchange listing headline two minutes before the jump.",
    "key_factors": ["listing news", "volume z 9"],
}


def request(schema: type[BaseModel] = Verdict, **kw) -> LLMRequest:
    return LLMRequest(
        role="triage-analyst",
        system="You are a market triage analyst.",
        messages=(Message("user", "BTCUSDT return z 11.2 at 12:00:03; classify."),),
        schema=schema,
        **kw,
    )


def run(coro: Awaitable):
    return asyncio.run(coro)


def stepping_clock(step_s: float) -> Callable[[], float]:
    ticks = itertools.count()
    return lambda: next(ticks) * step_s


async def anthropic_call(server: AnthropicServer, timeout_s: float = 5.0, **kw):
    provider = AnthropicProvider("claude-test", api_key=KEY, base_url=server.base_url, **kw)
    try:
        return await provider.complete(request(), timeout_s=timeout_s)
    finally:
        await provider.aclose()


async def openai_call(server: OpenAIServer, timeout_s: float = 5.0, req=None, **kw):
    kw.setdefault("mode", "json_schema")
    provider = OpenAIProvider("gpt-test", api_key=KEY, base_url=server.base_url, **kw)
    try:
        return await provider.complete(req or request(), timeout_s=timeout_s)
    finally:
        await provider.aclose()


def anthropic_error(*replies, timeout_s: float = 5.0) -> tuple[ProviderError, AnthropicServer]:
    async def go():
        async with AnthropicServer(replies) as server:
            with pytest.raises(ProviderError) as caught:
                await anthropic_call(server, timeout_s)
            return caught.value, server

    return run(go())


def openai_error(*replies, timeout_s: float = 5.0, **kw) -> tuple[ProviderError, OpenAIServer]:
    async def go():
        async with OpenAIServer(replies) as server:
            with pytest.raises(ProviderError) as caught:
                await openai_call(server, timeout_s, **kw)
            return caught.value, server

    return run(go())


# HTTP failures and what they must become; the same table for both protocols.
STATUS_CASES = [
    (status(500), "server", True, None),
    (status(503), "server", True, None),
    (status(529, "Overloaded"), "overloaded", True, None),
    (status(529, retry_after=4), "overloaded", True, 4.0),
    (status(429, retry_after=2), "rate_limited", True, 2.0),
    (status(429, retry_after_ms=1500), "rate_limited", True, 1.5),
    (status(429), "rate_limited", True, None),
    (status(401), "auth", False, None),
    (status(403), "auth", False, None),
    (status(400, "max_tokens: must be positive"), "bad_request", False, None),
    (status(404, "model not found"), "bad_request", False, None),
    (status(422, "unprocessable"), "bad_request", False, None),
]
CASE_IDS = [
    "500",
    "503",
    "529",
    "529-retry-after",
    "429-retry-after",
    "429-retry-after-ms",
    "429-bare",
    "401",
    "403",
    "400",
    "404",
    "422",
]

TRANSPORT_CASES = [
    (truncated(), "server"),
    (drop(), "server"),
    (garbage(), "server"),
    (garbage('{"id": "msg_1", "content": [', "application/json"), "server"),
]
TRANSPORT_IDS = ["truncated-body", "connection-dropped", "html-page", "cut-json"]


# ----------------------------------------------------------------------------- Anthropic


def test_anthropic_forced_tool_call_returns_the_tool_input_with_usage_and_model():
    async def go():
        async with AnthropicServer(
            [ok(VERDICT, usage=(321, 45), model="claude-test-20260101")]
        ) as s:
            result = await anthropic_call(s)
            return result, s

    result, server = run(go())
    assert result.data == VERDICT
    assert result.usage.input_tokens == 321 and result.usage.output_tokens == 45
    assert result.model == "claude-test-20260101"
    assert result.source == "anthropic"
    assert result.latency_ms > 0
    assert Verdict.model_validate(result.data)
    (sent,) = server.requests
    body = sent.body
    assert sent.path == "/v1/messages"
    assert body["model"] == "claude-test"
    assert body["system"] == "You are a market triage analyst."
    assert body["messages"] == [{"role": "user", "content": request().messages[0].content}]
    assert body["max_tokens"] == 1024 and "temperature" not in body
    (tool,) = body["tools"]
    assert tool["name"] == "submit_triage_analyst"
    assert tool["input_schema"] == Verdict.model_json_schema()
    assert "triage verdict" in tool["description"]
    assert body["tool_choice"] == {"type": "tool", "name": "submit_triage_analyst"}
    assert KEY in sent.headers.get("x-api-key", "") + sent.headers.get("authorization", "")
    assert "anthropic-version" in sent.headers


def test_anthropic_max_tokens_override_and_injected_clock_latency():
    async def go():
        async with AnthropicServer([ok(VERDICT)]) as s:
            result = await anthropic_call(s, max_tokens=77, clock=stepping_clock(0.25))
            return result, s.requests[0].body

    result, body = run(go())
    assert body["max_tokens"] == 77
    assert result.latency_ms == pytest.approx(250.0)


def test_anthropic_passes_schema_violating_json_through_for_the_router_to_validate():
    bad = {"classification": "MOON", "confidence": 7}
    result = run(_anthropic_ok(invalid(bad)))
    assert result.data == bad


async def _anthropic_ok(reply):
    async with AnthropicServer([reply]) as s:
        return await anthropic_call(s)


@pytest.mark.parametrize(("reply", "kind", "retryable", "retry_after"), STATUS_CASES, ids=CASE_IDS)
def test_anthropic_http_errors_are_typed(reply, kind, retryable, retry_after):
    error, server = anthropic_error(reply)
    assert error.kind == kind
    assert error.retryable is retryable
    assert error.status == reply.status
    assert error.retry_after_s == retry_after
    assert len(server.requests) == 1  # the SDK's own retries are off
    assert server.requests[0].headers["x-stainless-retry-count"] == "0"


@pytest.mark.parametrize(("reply", "kind"), TRANSPORT_CASES, ids=TRANSPORT_IDS)
def test_anthropic_broken_transport_is_a_server_error(reply, kind):
    error, server = anthropic_error(reply)
    assert error.kind == kind and error.retryable
    assert len(server.requests) == 1


def test_anthropic_timeout():
    error, _ = anthropic_error(slow(5.0, ok(VERDICT)), timeout_s=0.3)
    assert error.kind == "timeout" and error.retryable


def test_slow_answers_within_the_timeout_arrive():
    async def go():
        async with (
            AnthropicServer([slow(0.2, ok(VERDICT))]) as a,
            OpenAIServer([slow(0.2, ok(VERDICT))]) as o,
        ):
            return await anthropic_call(a, timeout_s=5), await openai_call(o, timeout_s=5)

    assert all(r.data == VERDICT for r in run(go()))


def test_anthropic_text_instead_of_tool_call_is_malformed_with_the_text():
    error, _ = anthropic_error(malformed("I think it is a spike."))
    assert error.kind == "malformed" and not error.retryable
    assert error.raw_text == "I think it is a spike."
    assert "submit_triage_analyst" in str(error)


def test_anthropic_answer_cut_off_inside_the_tool_call_is_malformed():
    error, _ = anthropic_error(ok({"classification": "NEWS_DRIVEN"}, stop="max_tokens"))
    assert error.kind == "malformed" and "max_tokens" in str(error)
    assert error.raw_text == '{"classification": "NEWS_DRIVEN"}'


def test_anthropic_wrong_key_is_auth():
    async def go():
        async with AnthropicServer([ok(VERDICT)], require_key="sk-the-right-one") as s:
            with pytest.raises(ProviderError) as caught:
                await anthropic_call(s)
            return caught.value

    error = run(go())
    assert error.kind == "auth" and error.status == 401


def test_anthropic_key_from_environment_and_missing_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingCredentials, match="ANTHROPIC_API_KEY"):
        AnthropicProvider("claude-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    async def go():
        async with AnthropicServer([ok(VERDICT)], require_key=KEY) as s:
            provider = AnthropicProvider("claude-test", base_url=s.base_url)
            try:
                return await provider.complete(request(), timeout_s=5)
            finally:
                await provider.aclose()

    assert run(go()).data == VERDICT


# ----------------------------------------------------------------------------- OpenAI


def test_openai_json_schema_returns_the_content_with_usage_and_model():
    async def go():
        async with OpenAIServer([ok(VERDICT, usage=(200, 30), model="gpt-test-2026")]) as s:
            return await openai_call(s), s

    result, server = run(go())
    assert result.data == VERDICT
    assert (result.usage.input_tokens, result.usage.output_tokens) == (200, 30)
    assert result.model == "gpt-test-2026"
    assert result.source == "openai-compatible"
    assert result.latency_ms > 0
    (sent,) = server.requests
    body = sent.body
    assert sent.path == "/v1/chat/completions"
    assert body["messages"][0] == {"role": "system", "content": "You are a market triage analyst."}
    assert body["messages"][1]["role"] == "user"
    assert body["max_tokens"] == 1024 and body["temperature"] == 0.0
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "submit_triage_analyst"
    assert fmt["json_schema"]["schema"] == Verdict.model_json_schema()
    assert fmt["json_schema"]["strict"] is True  # closed and all required: strict-mode material
    assert "tools" not in body
    assert sent.headers["authorization"] == f"Bearer {KEY}"


def test_openai_strict_only_when_the_schema_allows_it():
    async def go():
        async with OpenAIServer([ok({"label": "x"})]) as s:
            await openai_call(s, req=request(Tagged))
            return s.requests[0].body

    body = run(go())
    assert body["response_format"]["json_schema"]["strict"] is False


def test_openai_proper_uses_max_completion_tokens_and_the_openai_kind(monkeypatch):
    # Kind "openai" is OpenAI's own endpoint; OPENAI_BASE_URL points the SDK at the loopback.
    async def go():
        async with OpenAIServer([ok(VERDICT)]) as s:
            monkeypatch.setenv("OPENAI_BASE_URL", s.base_url)
            provider = OpenAIProvider("gpt-test", api_key=KEY)
            try:
                result = await provider.complete(request(), timeout_s=5)
            finally:
                await provider.aclose()
            return provider, result, s.requests[0].body

    provider, result, body = run(go())
    assert provider.kind == "openai" and provider.mode == "json_schema"
    assert result.source == "openai"
    assert body["max_completion_tokens"] == 1024 and "max_tokens" not in body


def test_openai_schemas_leave_value_bounds_to_pydantic(monkeypatch):
    # TriageVerdict bounds its strings: OpenAI gets the strict form without the bounds,
    # a compatible server the structure without them; pydantic checks them on every answer.
    req = request(TriageVerdict)

    async def go():
        async with OpenAIServer(default=ok(VERDICT)) as s:
            monkeypatch.setenv("OPENAI_BASE_URL", s.base_url)
            for provider in (
                OpenAIProvider("gpt-test", api_key=KEY),
                OpenAIProvider("local", base_url=s.base_url, mode="json_schema"),
            ):
                await provider.complete(req, timeout_s=5)
                await provider.aclose()
            return [r.body["response_format"]["json_schema"] for r in s.requests]

    to_openai, to_compatible = run(go())
    full = TriageVerdict.model_json_schema()
    assert to_openai["strict"] is True
    assert "maxLength" not in to_openai["schema"]["properties"]["reasoning"]
    assert to_openai["schema"] == strict_form(full)
    # llama.cpp compiles the schema into a grammar; maxLength 2000 kills that grammar.
    assert to_compatible["strict"] is True
    assert to_compatible["schema"] == without_bounds(full)
    assert "maxLength" not in json.dumps(to_compatible["schema"])
    assert TriageVerdict.model_json_schema() == full  # the shared per-class form is untouched


def test_strict_form_refuses_structures_strict_mode_cannot_express():
    class Open(BaseModel):
        counts: dict[str, int]

    class Nullable(BaseModel):
        model_config = ConfigDict(extra="forbid")
        note: str | None

    class Optional(BaseModel):
        model_config = ConfigDict(extra="forbid")
        note: str | None = None

    assert strict_form(Open.model_json_schema()) is None
    assert strict_form(Optional.model_json_schema()) is None
    assert strict_form(Nullable.model_json_schema())["properties"]["note"]["anyOf"] == [
        {"type": "string"},
        {"type": "null"},
    ]
    assert strict_form({"type": "object", "allOf": []}) is None
    assert strict_form({"type": "string"}) is None


def test_openai_tool_mode_forces_a_function_call():
    async def go():
        async with OpenAIServer([ok(VERDICT)]) as s:
            return await openai_call(s, mode="tool"), s.requests[0].body

    result, body = run(go())
    assert result.data == VERDICT
    (tool,) = body["tools"]
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "submit_triage_analyst"
    assert tool["function"]["parameters"] == Verdict.model_json_schema()
    assert body["tool_choice"] == {
        "type": "function",
        "function": {"name": "submit_triage_analyst"},
    }
    assert "response_format" not in body


def test_openai_json_object_mode_writes_the_schema_into_the_system_prompt(monkeypatch):
    async def go():
        async with OpenAIServer(default=ok(VERDICT)) as s:
            monkeypatch.setenv("OPENAI_BASE_URL", s.base_url)
            compatible = await openai_call(s, mode="json_object")
            provider = OpenAIProvider("gpt-test", api_key=KEY, mode="json_object")
            await provider.complete(request(), timeout_s=5)
            await provider.aclose()
            return compatible, [r.body for r in s.requests]

    result, (to_compatible, to_openai) = run(go())
    assert result.data == VERDICT
    for body in (to_compatible, to_openai):
        system = body["messages"][0]["content"]
        assert system.startswith("You are a market triage analyst.")
        assert '"key_factors"' in system and "JSON" in system
    # llama.cpp's servers constrain json_object by an attached schema; OpenAI refuses one.
    assert to_compatible["response_format"] == {
        "type": "json_object",
        "schema": Verdict.model_json_schema(),
    }
    assert to_openai["response_format"] == {"type": "json_object"}


def test_openai_malformed_content_and_tool_arguments():
    error, _ = openai_error(malformed("not json at all"))
    assert error.kind == "malformed" and error.raw_text == "not json at all"
    error, _ = openai_error(malformed('{"classification": "IGN'), mode="tool")
    assert error.kind == "malformed" and error.raw_text == '{"classification": "IGN'
    error, _ = openai_error(ok(["a", "list"]))  # JSON, but not an object
    assert error.kind == "malformed" and "not an object" in str(error)


def test_openai_answer_cut_off_at_the_token_limit_is_malformed():
    async def go():
        async with OpenAIServer(
            [Reply("malformed", text='{"reasoning": "the list', stop="length")]
        ) as s:
            with pytest.raises(ProviderError) as caught:
                await openai_call(s)
            return caught.value

    error = run(go())
    assert error.kind == "malformed" and "cut off at max_tokens" in str(error)
    assert error.raw_text == '{"reasoning": "the list'


def test_openai_fenced_json_and_raw_newlines_in_strings_are_accepted():
    async def go():
        async with OpenAIServer(
            [malformed('```json\n{"label": "x"}\n```'), malformed('{"label": "two\nlines"}')]
        ) as s:
            return [await openai_call(s, req=request(Tagged)) for _ in range(2)]

    fenced, raw_newline = run(go())
    assert fenced.data == {"label": "x"}
    assert raw_newline.data == {"label": "two\nlines"}  # llama.cpp grammars allow this


def test_openai_tool_mode_without_a_tool_call_is_malformed():
    async def go():
        async with OpenAIServer(tools="ignore") as s:
            with pytest.raises(ProviderError) as caught:
                await openai_call(s, mode="tool")
            return caught.value

    error = run(go())
    assert error.kind == "malformed" and error.raw_text == PROSE
    assert "no submit_triage_analyst tool call" in str(error)


@pytest.mark.parametrize(("reply", "kind", "retryable", "retry_after"), STATUS_CASES, ids=CASE_IDS)
def test_openai_http_errors_are_typed(reply, kind, retryable, retry_after):
    error, server = openai_error(reply)
    assert error.kind == kind
    assert error.retryable is retryable
    assert error.status == reply.status
    assert error.retry_after_s == retry_after
    assert len(server.requests) == 1
    assert server.requests[0].headers["x-stainless-retry-count"] == "0"


@pytest.mark.parametrize(("reply", "kind"), TRANSPORT_CASES, ids=TRANSPORT_IDS)
def test_openai_broken_transport_is_a_server_error(reply, kind):
    error, server = openai_error(reply)
    assert error.kind == kind and error.retryable
    assert len(server.requests) == 1


def test_openai_timeout():
    error, _ = openai_error(slow(5.0, ok(VERDICT)), timeout_s=0.3)
    assert error.kind == "timeout" and error.retryable


def test_openai_missing_usage_is_estimated_not_free():
    async def go():
        async with OpenAIServer([ok(VERDICT, usage=None)]) as s:
            return await openai_call(s)

    usage = run(go()).usage
    assert usage.input_tokens > 10 and usage.output_tokens > 10


def test_openai_key_handling(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(MissingCredentials, match="OPENAI_API_KEY"):
        OpenAIProvider("gpt-test")
    # A compatible server never gets the OpenAI key implicitly.
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    async def go():
        async with OpenAIServer([ok(VERDICT)]) as s:
            provider = OpenAIProvider("local", base_url=s.base_url)
            try:
                await provider.complete(request(), timeout_s=5)
            finally:
                await provider.aclose()
            return s.requests[0].headers["authorization"]

    assert run(go()) == "Bearer no-key"


def test_openai_wrong_key_is_auth():
    async def go():
        async with OpenAIServer([ok(VERDICT)], require_key="sk-the-right-one") as s:
            with pytest.raises(ProviderError) as caught:
                await openai_call(s)
            return caught.value

    error = run(go())
    assert error.kind == "auth" and error.status == 401


def test_openai_bad_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        OpenAIProvider("m", api_key=KEY, mode="xml")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- auto mode


async def _auto_calls(server: OpenAIServer, n: int) -> tuple[OpenAIProvider, list]:
    provider = OpenAIProvider("local", base_url=server.base_url)
    assert provider.mode == "auto" and provider.resolved_mode is None
    try:
        results = [await provider.complete(request(), timeout_s=5) for _ in range(n)]
    finally:
        await provider.aclose()
    return provider, results


def _ways(server: OpenAIServer) -> list[str]:
    """How each request asked for structure, in order."""
    out = []
    for r in server.requests:
        fmt = r.body.get("response_format", {}).get("type")
        out.append(fmt or ("tool" if r.body.get("tools") else "none"))
    return out


def test_auto_uses_json_schema_when_the_server_supports_it():
    async def go():
        async with OpenAIServer(default=ok(VERDICT)) as s:
            provider, results = await _auto_calls(s, 2)
            return provider, results, _ways(s)

    provider, results, ways = run(go())
    assert provider.resolved_mode == "json_schema"
    assert ways == ["json_schema", "json_schema"]
    assert all(r.data == VERDICT for r in results)


def test_auto_falls_back_to_tool_when_json_schema_is_rejected_and_remembers():
    async def go():
        async with OpenAIServer(default=ok(VERDICT), json_schema="reject") as s:
            provider, results = await _auto_calls(s, 3)
            return provider, results, _ways(s)

    provider, results, ways = run(go())
    assert ways == ["json_schema", "tool", "tool", "tool"]  # one probe, then remembered
    assert provider.resolved_mode == "tool"
    assert all(r.data == VERDICT for r in results)


def test_auto_treats_a_validation_500_naming_the_feature_as_unsupported():
    # llama-cpp-python's server refuses response_format json_schema with a 500.
    async def go():
        async with OpenAIServer(default=ok(VERDICT), json_schema="reject_500") as s:
            provider, results = await _auto_calls(s, 2)
            return provider, results, _ways(s)

    provider, results, ways = run(go())
    assert ways == ["json_schema", "tool", "tool"]
    assert provider.resolved_mode == "tool"
    assert [r.data for r in results] == [VERDICT, VERDICT]


def test_auto_falls_back_to_json_object_when_tools_are_rejected_too():
    async def go():
        async with OpenAIServer(default=ok(VERDICT), json_schema="reject", tools="reject") as s:
            provider, results = await _auto_calls(s, 2)
            return provider, results, _ways(s)

    provider, results, ways = run(go())
    assert ways == ["json_schema", "tool", "json_object", "json_object"]
    assert provider.resolved_mode == "json_object"
    assert results[1].data == VERDICT


def test_auto_falls_back_when_the_server_ignores_json_schema_and_counts_the_wasted_tokens():
    async def go():
        async with OpenAIServer([ok(VERDICT, usage=(100, 20))], json_schema="ignore") as s:
            provider, (result,) = await _auto_calls(s, 1)
            return provider, result, _ways(s)

    provider, result, ways = run(go())
    assert ways == ["json_schema", "tool"]
    assert provider.resolved_mode == "tool"
    # The prose answer (9 in, 12 out) was paid for too.
    assert (result.usage.input_tokens, result.usage.output_tokens) == (109, 32)


def test_auto_does_not_fall_back_on_errors_that_are_not_about_features():
    async def go():
        async with OpenAIServer(
            [
                status(400, "This model's maximum context length is 4096 tokens"),
                status(500),
                ok(VERDICT),
            ]
        ) as s:
            provider = OpenAIProvider("local", base_url=s.base_url)
            errors = []
            for _ in range(2):
                with pytest.raises(ProviderError) as caught:
                    await provider.complete(request(), timeout_s=5)
                errors.append(caught.value)
            mode_after_errors = provider.resolved_mode
            result = await provider.complete(request(), timeout_s=5)
            await provider.aclose()
            return errors, mode_after_errors, result, _ways(s)

    errors, mode_after_errors, result, ways = run(go())
    assert [e.kind for e in errors] == ["bad_request", "server"]
    assert mode_after_errors is None  # nothing learnt from failures
    assert ways == ["json_schema", "json_schema", "json_schema"]
    assert result.data == VERDICT


def test_auto_raises_the_first_malformed_answer_when_every_way_fails():
    async def go():
        async with OpenAIServer(
            [malformed("junk one"), malformed("junk two"), malformed("junk three")]
        ) as s:
            provider = OpenAIProvider("local", base_url=s.base_url)
            with pytest.raises(ProviderError) as caught:
                await provider.complete(request(), timeout_s=5)
            await provider.aclose()
            return provider, caught.value, _ways(s)

    provider, error, ways = run(go())
    assert ways == ["json_schema", "tool", "json_object"]
    assert error.kind == "malformed" and error.raw_text == "junk one"
    assert provider.resolved_mode is None


def test_auto_raises_the_last_refusal_when_no_way_is_supported():
    async def go():
        async with OpenAIServer(json_schema="reject", tools="reject") as s:
            s.default = status(400, "response_format json_object is not supported")
            provider = OpenAIProvider("local", base_url=s.base_url)
            with pytest.raises(ProviderError) as caught:
                await provider.complete(request(), timeout_s=5)
            await provider.aclose()
            return caught.value

    error = run(go())
    assert error.kind == "bad_request" and "json_object" in str(error)


def test_auto_probing_shares_one_deadline():
    # The clock steps 1 s per reading: the deadline (1.5 s) has passed when the first probe
    # (json_schema, refused) is over, so the fallback is not sent.
    async def go():
        async with OpenAIServer([ok(VERDICT)], json_schema="reject") as s:
            provider = OpenAIProvider("local", base_url=s.base_url, clock=stepping_clock(1.0))
            with pytest.raises(ProviderError) as caught:
                await provider.complete(request(), timeout_s=1.5)
            await provider.aclose()
            return caught.value, _ways(s)

    error, ways = run(go())
    assert error.kind == "timeout" and "auto" in str(error)
    assert ways == ["json_schema"]


# ----------------------------------------------------------------------------- both


def test_providers_satisfy_the_port_and_serve_concurrent_calls():
    async def go():
        async with (
            AnthropicServer(default=ok(VERDICT)) as a,
            OpenAIServer(default=lambda body: ok(VERDICT, usage=(len(str(body)), 5))) as o,
        ):
            providers = [
                AnthropicProvider("claude-test", api_key=KEY, base_url=a.base_url),
                OpenAIProvider("local", api_key=KEY, base_url=o.base_url),
            ]
            try:
                assert all(isinstance(p, Provider) for p in providers)
                calls = [p.complete(request(), timeout_s=5) for p in providers for _ in range(10)]
                results = await asyncio.gather(*calls)
            finally:
                for p in providers:
                    await p.aclose()
            return results, len(a.requests), len(o.requests)

    results, n_anthropic, n_openai = run(go())
    assert all(r.data == VERDICT for r in results)
    assert (n_anthropic, n_openai) == (10, 10)


def test_thread_hosted_server_for_sync_callers():
    with OpenAIServer([ok(VERDICT)]) as server:
        result = run(openai_call(server))
        assert len(server.requests) == 1
    assert result.data == VERDICT


def test_keys_never_appear_in_errors_reprs_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    echo = f"invalid x-api-key {KEY}"  # a careless server that echoes the key

    async def go():
        async with (
            AnthropicServer([status(401, echo), drop()]) as a,
            OpenAIServer([status(401, echo), truncated()]) as o,
        ):
            providers = [
                AnthropicProvider("claude-test", api_key=KEY, base_url=a.base_url),
                OpenAIProvider("local", api_key=KEY, base_url=o.base_url),
            ]
            errors = []
            for p in providers:
                for _ in range(2):
                    with pytest.raises(ProviderError) as caught:
                        await p.complete(request(), timeout_s=5)
                    errors.append(caught.value)
                await p.aclose()
            return providers, errors, a.requests + o.requests

    providers, errors, sent = run(go())
    assert all(
        KEY in (r.headers.get("authorization", "") + r.headers.get("x-api-key", "")) for r in sent
    )  # the key was sent ...
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(p) for p in providers]
    assert all(KEY not in t for t in texts)  # ... and nowhere else
    assert "***" in str(errors[0])
    assert KEY not in caplog.text
    assert all(e.__cause__ is None and e.__suppress_context__ for e in errors)


def test_retry_after_as_http_date():
    error, _ = openai_error(status(429, retry_after="Wed, 21 Oct 2099 07:28:00 GMT"))
    assert error.kind == "rate_limited" and error.retry_after_s > 1e9
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({"retry-after": "nan"}) is None
