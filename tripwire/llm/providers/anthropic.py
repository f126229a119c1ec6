"""The Anthropic provider: Claude through the official ``anthropic`` SDK.

Structured output by a forced tool call: the request's pydantic schema becomes the
``input_schema`` of one tool, ``tool_choice`` forces the model to call it, and the
``tool_use`` block's ``input`` is the answer. The SDK's own retries are off
(``max_retries=0``): the router owns retries, backoff and failover, and it needs every
failure typed (:mod:`tripwire.llm.providers._http` does the translation).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import anthropic

from tripwire.llm.base import LLMRequest, ProviderError, ProviderResult, Usage
from tripwire.llm.providers._http import (
    MissingCredentials,
    SDKErrors,
    elapsed_ms,
    loads_object,
    per_schema,
    safe_url,
    sdk_call,
    tool_description,
    tool_name,
)

_SDK = SDKErrors(
    base=anthropic.AnthropicError,
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    status=anthropic.APIStatusError,
)


class AnthropicProvider:
    """Claude ``model`` behind the Messages API (or any server speaking it at ``base_url``).

    ``api_key`` defaults to ``ANTHROPIC_API_KEY``; ``max_tokens`` overrides the request's.
    The key lives only inside the SDK client: not in this object's repr, not in errors.
    """

    kind = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int | None = None,
        name: str = "anthropic",
        clock: Callable[[], float] = time.perf_counter,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise MissingCredentials(
                f"{name}: no Anthropic API key; pass api_key or set ANTHROPIC_API_KEY"
            )
        self.model = model
        self.name = name
        self.base_url = base_url
        self.max_tokens = max_tokens
        self._clock = clock
        self._secrets = (key,)
        self._client = anthropic.AsyncAnthropic(
            api_key=key, base_url=base_url, max_retries=0, default_headers=default_headers
        )

    def __repr__(self) -> str:
        where = f", base_url={safe_url(self.base_url)!r}" if self.base_url else ""
        return f"AnthropicProvider(model={self.model!r}, name={self.name!r}{where})"

    async def complete(self, request: LLMRequest, *, timeout_s: float) -> ProviderResult:
        tool = tool_name(request.role)
        params = self._params(request, tool)
        started = self._clock()
        message = await sdk_call(
            partial(self._client.messages.create, **params, timeout=timeout_s),
            _SDK,
            timeout_s=timeout_s,
            label=self.name,
            secrets=self._secrets,
        )
        latency = elapsed_ms(self._clock, started)
        if not isinstance(message, anthropic.types.Message):
            # The SDK hands back the raw text when the body was not JSON (a proxy's page).
            raise ProviderError("server", f"{self.name}: the response is not a message")
        data, raw = self._answer(message, tool)
        return ProviderResult(
            data=data,
            raw_text=raw,
            usage=_usage(message),
            model=str(getattr(message, "model", "") or self.model),
            latency_ms=latency,
            source=self.kind,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _params(self, request: LLMRequest, tool: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens or request.max_tokens,
            # No temperature: the Messages API of SDK 2.x no longer takes sampling parameters.
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "tools": [
                {
                    "name": tool,
                    "description": tool_description(request),
                    "input_schema": _input_schema(request.schema),
                }
            ],
            "tool_choice": {"type": "tool", "name": tool},
        }
        if request.system:  # the API refuses an empty system block
            params["system"] = request.system
        return params

    def _answer(self, message: Any, tool: str) -> tuple[dict[str, Any], str]:
        """The forced tool call's input, or a ``malformed`` error quoting what came back."""
        blocks = list(getattr(message, "content", None) or [])
        stop = getattr(message, "stop_reason", None)
        cut = " (cut off at max_tokens)" if stop == "max_tokens" else ""
        for block in blocks:
            if getattr(block, "type", None) == "tool_use" and getattr(block, "name", tool) == tool:
                payload = block.input
                if isinstance(payload, dict) and not cut:
                    return payload, json.dumps(payload, ensure_ascii=False)
                if isinstance(payload, dict):
                    # Stopped inside the tool call: whatever input there is, is incomplete.
                    raw = json.dumps(payload, ensure_ascii=False)
                    raise ProviderError("malformed", f"{self.name}: tool input{cut}", raw_text=raw)
                # A server (or a cut-off answer) can leave the input as a string.
                text = payload if isinstance(payload, str) else json.dumps(payload)
                return loads_object(text, label=f"{self.name} tool input", note=cut), text
        text = "".join(getattr(b, "text", "") for b in blocks if getattr(b, "type", "") == "text")
        raise ProviderError(
            "malformed",
            f"{self.name}: the answer has no {tool} tool call (stop_reason {stop}){cut}",
            raw_text=text,
        )


# Shared per schema class; the SDK serialises it and never writes to it.
_input_schema = per_schema(lambda schema: schema.model_json_schema())


def _usage(message: Any) -> Usage:
    usage = getattr(message, "usage", None)
    if usage is None:
        return Usage()
    # Prompt-cache reads and writes are input tokens too; counting them keeps budgets honest
    # (the price table's input rate over-estimates cache reads, which is the safe side).
    cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return Usage(
        input_tokens=(usage.input_tokens or 0) + cached, output_tokens=usage.output_tokens or 0
    )
