"""The OpenAI and OpenAI-compatible providers, through the official ``openai`` SDK.

One class serves OpenAI itself and every server that speaks its Chat Completions protocol
at a ``base_url`` (vLLM, llama.cpp server, Ollama, LiteLLM/Bifrost gateways). Three ways
to get structured output, as the server allows:

- ``json_schema``: ``response_format`` with the request's JSON schema. OpenAI gets
  ``strict: true`` when the schema's structure allows it (every object closed, every field
  required), with the value bounds strict mode does not know (string lengths, defaults)
  left out: the structure is then guaranteed and the router's pydantic validation still
  checks the bounds. Compatible servers get the full schema (llama.cpp turns it into a
  grammar, bounds included);
- ``tool``: a forced function call whose arguments are the JSON answer;
- ``json_object``: ``response_format {"type": "json_object"}`` with the schema written into
  the system prompt.

``auto`` (the default for compatible servers) tries them in that order and keeps the first
that works for the life of the provider: a server that answers 400/422 naming the unsupported
feature, or that ignores the constraint and answers prose, moves it to the next way.

A compatible server never receives ``OPENAI_API_KEY`` implicitly: a key for api.openai.com
must not travel to another host, so such servers get the ``api_key`` given (local servers
need none and get a placeholder).

>>> schema = {"type": "object", "additionalProperties": False, "required": ["a"],
...           "properties": {"a": {"type": "string", "maxLength": 9}}}
>>> strict_form(schema)["properties"]
{'a': {'type': 'string'}}
>>> strict_form({**schema, "required": []}) is None  # an optional field: not strict material
True
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

import openai
from pydantic import BaseModel

from tripwire.llm.base import LLMRequest, ProviderError, ProviderResult, Usage
from tripwire.llm.providers._http import (
    MissingCredentials,
    SDKErrors,
    elapsed_ms,
    estimate_tokens,
    loads_object,
    per_schema,
    safe_url,
    sdk_call,
    tool_description,
    tool_name,
)

log = logging.getLogger(__name__)

Mode = Literal["json_schema", "tool", "json_object", "auto"]
FALLBACK_ORDER: tuple[Mode, ...] = ("json_schema", "tool", "json_object")
_MODES = frozenset((*FALLBACK_ORDER, "auto"))

NO_KEY = "no-key"  # local servers ignore the key, but the SDK insists on one

_SDK = SDKErrors(
    base=openai.OpenAIError,
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    status=openai.APIStatusError,
)

# How servers word "I do not support that" in a 400/422 (llama.cpp, vLLM, Ollama, gateways).
_UNSUPPORTED = re.compile(
    r"response_format|json_schema|json_object|tool|function|grammar|not supported|unsupported"
    r"|not implemented|unknown (field|parameter)|unrecognized|extra (inputs|fields)",
    re.IGNORECASE,
)
# llama-cpp-python's server answers 500 when request validation refuses a feature, e.g.
# "literal_error ... ('body', 'response_format', 'type') ... Input should be 'text' or
# 'json_object'": a 500 counts as "unsupported" only when it is such a refusal.
_REFUSED_FIELD = re.compile(r"response_format|json_schema|tool_choice|tools", re.IGNORECASE)
_REFUSAL = re.compile(
    r"validation error|literal_error|input should be|not supported|unsupported", re.IGNORECASE
)

# Keywords OpenAI's strict structured outputs accept. A schema with any other keyword, beyond
# the value bounds below, is sent non-strict: strict with an unknown keyword is a 400 that no
# retry would cure.
_STRICT_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "anyOf", "$ref", "$defs", "description", "title", "pattern", "format", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    }
)  # fmt: skip
# Bounds on values that strict mode does not take: dropped from the strict form (pydantic
# checks them on every answer anyway).
_VALUE_BOUNDS = frozenset(
    {"minLength", "maxLength", "default", "examples", "minProperties", "maxProperties",
     "uniqueItems", "readOnly", "writeOnly", "deprecated"}
)  # fmt: skip
_TYPED = frozenset({"type", "$ref", "anyOf", "enum", "const"})


class OpenAIProvider:
    """``model`` behind Chat Completions: OpenAI, or a compatible server at ``base_url``.

    ``mode`` defaults to ``json_schema`` for OpenAI and ``auto`` for compatible servers;
    ``strict`` None decides from the schema. ``send_temperature`` False leaves temperature
    out (reasoning models refuse any but the default).
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        mode: Mode | None = None,
        name: str | None = None,
        max_tokens: int | None = None,
        strict: bool | None = None,
        send_temperature: bool = True,
        clock: Callable[[], float] = time.perf_counter,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = "openai-compatible" if base_url else "openai"
        self.mode: Mode = mode or ("auto" if base_url else "json_schema")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {sorted(_MODES)}, not {self.mode!r}")
        self.model = model
        self.name = name or self.kind
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.strict = strict
        self.send_temperature = send_temperature
        self._clock = clock
        self._resolved: Mode | None = None if self.mode == "auto" else self.mode
        key = self._key(api_key)
        self._secrets = (key,)
        self._client = openai.AsyncOpenAI(
            api_key=key, base_url=base_url, max_retries=0, default_headers=default_headers
        )

    def _key(self, api_key: str | None) -> str:
        if api_key:
            return api_key
        if self.kind == "openai-compatible":
            return NO_KEY
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise MissingCredentials(
                f"{self.name}: no OpenAI API key; pass api_key or set OPENAI_API_KEY"
            )
        return key

    def __repr__(self) -> str:
        where = f", base_url={safe_url(self.base_url)!r}" if self.base_url else ""
        return (
            f"OpenAIProvider(model={self.model!r}, name={self.name!r}, mode={self.mode!r}{where})"
        )

    @property
    def resolved_mode(self) -> Mode | None:
        """The structured-output way in use (None while ``auto`` has not found one)."""
        return self._resolved

    async def complete(self, request: LLMRequest, *, timeout_s: float) -> ProviderResult:
        if self._resolved is not None:
            return await self._complete_in(self._resolved, request, timeout_s)
        return await self._probe(request, timeout_s)

    async def aclose(self) -> None:
        await self._client.close()

    # -- auto: find the way the server supports ---------------------------------------------

    async def _probe(self, request: LLMRequest, timeout_s: float) -> ProviderResult:
        started = self._clock()
        deadline = started + timeout_s
        spent = Usage()  # tokens of answers that ignored the constraint were still paid for
        failures: list[ProviderError] = []
        for mode in FALLBACK_ORDER:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ProviderError("timeout", f"{self.name}: no answer in time (auto mode)")
            try:
                result = await self._complete_in(mode, request, remaining, probing=True)
            except _Ignored as ignored:
                spent = _add(spent, ignored.usage)
                failures.append(ignored.error)
                continue
            except ProviderError as err:
                if not _unsupported(err):
                    raise
                failures.append(err)
                continue
            self._resolved = mode
            log.info("%s: structured output by %s (auto mode)", self.name, mode)
            # The caller waited for, and paid for, every probe.
            return replace(
                result,
                usage=_add(spent, result.usage),
                latency_ms=elapsed_ms(self._clock, started),
            )
        malformed = [f for f in failures if f.kind == "malformed"]
        raise (malformed[0] if malformed else failures[-1])

    # -- one call in one way -----------------------------------------------------------------

    async def _complete_in(
        self,
        mode: Mode,
        request: LLMRequest,
        timeout_s: float,
        *,
        probing: bool = False,
    ) -> ProviderResult:
        tool = tool_name(request.role)
        params = self._params(mode, request, tool)
        started = self._clock()
        completion = await sdk_call(
            partial(self._client.chat.completions.create, **params, timeout=timeout_s),
            _SDK,
            timeout_s=timeout_s,
            label=self.name,
            secrets=self._secrets,
        )
        latency = (self._clock() - started) * 1000.0
        reply = self._reply(completion, mode, tool, params)
        if reply.error is not None:
            if probing:
                raise _Ignored(reply.error, reply.usage)
            raise reply.error
        assert reply.data is not None
        return ProviderResult(
            data=reply.data,
            raw_text=reply.text,
            usage=reply.usage,
            model=reply.model or self.model,
            latency_ms=latency,
            source=self.kind,
        )

    def _params(self, mode: Mode, request: LLMRequest, tool: str) -> dict[str, Any]:
        forms = _forms(request.schema)
        params: dict[str, Any] = {"model": self.model}
        limit = self.max_tokens or request.max_tokens
        # OpenAI's newer models take max_completion_tokens only; many servers know max_tokens.
        params["max_completion_tokens" if self.kind == "openai" else "max_tokens"] = limit
        if self.send_temperature:
            params["temperature"] = request.temperature
        # The structured-output part depends only on the way, the schema, the role and this
        # provider's settings: built once per such shape (the SDK only reads it).
        shape_key = (mode, request.role, self.kind, self.strict)
        shape = forms.shapes.get(shape_key)
        if shape is None:
            shape = forms.shapes[shape_key] = self._shape(mode, request, tool, forms)
        params.update(shape)
        system = request.system
        if mode == "json_object":
            system = f"{system}\n\n{forms.rule}" if system else forms.rule
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        params["messages"] = messages
        return params

    def _shape(self, mode: Mode, request: LLMRequest, tool: str, forms: _Forms) -> dict[str, Any]:
        """The request parameters that ask for structured output in ``mode``."""
        schema, strict = self._schema(forms)
        if mode == "json_schema":
            return {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": tool, "schema": schema, "strict": strict},
                }
            }
        if mode == "tool":
            function = {
                "name": tool,
                "description": tool_description(request),
                "parameters": schema,
            }
            if strict:
                function["strict"] = True
            return {
                "tools": [{"type": "function", "function": function}],
                "tool_choice": {"type": "function", "function": {"name": tool}},
            }
        response_format: dict[str, Any] = {"type": "json_object"}
        if self.kind == "openai-compatible":
            # llama.cpp's servers constrain json_object answers by an attached schema;
            # the others ignore the extra field. OpenAI itself would refuse it.
            response_format["schema"] = schema
        return {"response_format": response_format}

    def _schema(self, forms: _Forms) -> tuple[dict[str, Any], bool]:
        """The schema to send and whether to ask for strict mode."""
        if self.kind == "openai-compatible":
            # llama.cpp compiles the schema into a grammar, and a long maxLength (thousands
            # of nested optional characters) makes that grammar fail to parse and the server
            # process die: compatible servers get the structure, pydantic checks the bounds.
            wanted = forms.tight is not None if self.strict is None else self.strict
            return forms.loose, wanted
        if self.strict is False or forms.tight is None:
            return forms.full, bool(self.strict)
        return forms.tight, True

    def _reply(self, completion: Any, mode: Mode, tool: str, params: dict[str, Any]) -> _Reply:
        """The answer in ``completion`` (or why there is none), with its usage."""
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list):
            # The SDK hands back the raw text when the body was not JSON (a proxy's page).
            raise ProviderError("server", f"{self.name}: the response is not a chat completion")
        model = str(getattr(completion, "model", "") or "")
        if not choices:
            error = ProviderError(
                "malformed", f"{self.name}: the answer has no choices", raw_text=""
            )
            return _Reply(None, "", _usage(completion, params, ""), model, error)
        choice = choices[0]
        text, why = _answer_text(choice.message, mode, tool)
        usage = _usage(completion, params, text)
        cut = " (cut off at max_tokens)" if choice.finish_reason == "length" else ""
        if why:
            error = ProviderError("malformed", f"{self.name}: {why}{cut}", raw_text=text)
            return _Reply(None, text, usage, model, error)
        try:
            data = loads_object(text, label=f"{self.name} answer", note=cut)
        except ProviderError as error:
            return _Reply(None, text, usage, model, error)
        return _Reply(data, text, usage, model, None)


@dataclass(slots=True)
class _Reply:
    data: dict[str, Any] | None
    text: str
    usage: Usage
    model: str
    error: ProviderError | None


class _Ignored(Exception):
    """In auto mode: the server answered, but not in the way asked for (carries its usage)."""

    def __init__(self, error: ProviderError, usage: Usage) -> None:
        super().__init__(str(error))
        self.error = error
        self.usage = usage


def _answer_text(message: Any, mode: Mode, tool: str) -> tuple[str, str]:
    """(the JSON text, why it is missing or '') from an assistant message."""
    content = getattr(message, "content", None) or ""
    if mode != "tool" and content:
        return content, ""
    calls = list(getattr(message, "tool_calls", None) or [])
    if mode == "tool":
        for call in calls:
            function = getattr(call, "function", None)
            if function is not None and getattr(function, "name", tool) == tool:
                return str(function.arguments or ""), ""
        return content, f"the answer has no {tool} tool call"
    if calls and getattr(calls[0], "function", None) is not None:
        return str(calls[0].function.arguments or ""), ""  # servers that answer by a tool call
    refusal = getattr(message, "refusal", None)
    if refusal:
        return str(refusal), "the model refused"
    return "", "the answer is empty"


def _usage(completion: Any, params: dict[str, Any], text: str) -> Usage:
    usage = getattr(completion, "usage", None)
    if usage is None:
        prompt = sum(len(str(m.get("content") or "")) for m in params["messages"])
        return Usage(estimate_tokens(prompt), estimate_tokens(len(text)))
    return Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0)


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(a.input_tokens + b.input_tokens, a.output_tokens + b.output_tokens)


def _unsupported(err: ProviderError) -> bool:
    """A refusal that names a feature the server lacks: a 400/422 saying so, or a 500 from
    request validation (any other error is the request's or the server's, not the way's)."""
    text = str(err)
    if err.kind == "bad_request" and err.status in (400, 422):
        return bool(_UNSUPPORTED.search(text))
    if err.kind == "server" and err.status == 500:
        return bool(_REFUSED_FIELD.search(text) and _REFUSAL.search(text))
    return False


@dataclass(frozen=True, slots=True)
class _Forms:
    """An answer schema in the forms the three ways send (computed once per class)."""

    full: dict[str, Any]  # as pydantic writes it
    tight: dict[str, Any] | None  # OpenAI's strict form (None: the structure is not strict)
    loose: dict[str, Any]  # without value bounds, for servers that compile it to a grammar
    rule: str  # the json_object way's system-prompt paragraph
    # (mode, role, provider kind, strict setting) -> the structured-output request parameters
    shapes: dict[tuple[Mode, str, str, bool | None], dict[str, Any]] = field(default_factory=dict)


@per_schema
def _forms(schema: type[BaseModel]) -> _Forms:
    full = schema.model_json_schema()
    spec = json.dumps(full, separators=(",", ":"))
    rule = (
        f"Answer with one JSON object, and nothing else, that conforms to this JSON schema:\n{spec}"
    )
    return _Forms(full=full, tight=strict_form(full), loose=without_bounds(full), rule=rule)


def strict_form(schema: dict[str, Any]) -> dict[str, Any] | None:
    """``schema`` as OpenAI's strict mode takes it (value bounds it does not know left out),
    or None when its structure cannot be strict: an object left open or with an optional
    field, an untyped node, or a keyword such as ``allOf`` or ``oneOf``."""
    if schema.get("type") != "object":
        return None  # strict mode wants an object at the root
    try:
        return _strict_node(schema)
    except _NotStrict:
        return None


class _NotStrict(Exception):
    """Raised from deep in the walk: the schema cannot be strict."""


def _strict_node(node: Any) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise _NotStrict
    keys = set(node)
    if not keys <= _STRICT_KEYWORDS | _VALUE_BOUNDS or not keys & _TYPED:
        raise _NotStrict
    out = {k: v for k, v in node.items() if k not in _VALUE_BOUNDS}
    props = node.get("properties")
    if node.get("type") == "object" or props is not None:
        props = props or {}
        closed = node.get("additionalProperties") is False
        if not closed or set(node.get("required", ())) != set(props):
            raise _NotStrict
        out["properties"] = {name: _strict_node(sub) for name, sub in props.items()}
    if "$defs" in node:
        out["$defs"] = {name: _strict_node(sub) for name, sub in node["$defs"].items()}
    if "items" in node:
        out["items"] = _strict_node(node["items"])
    if "anyOf" in node:
        out["anyOf"] = [_strict_node(sub) for sub in node["anyOf"]]
    return out


_BOUND_FREE_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_BOUND_FREE_NODES = ("items", "additionalProperties", "not", "contains")
_BOUND_FREE_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def without_bounds(node: Any) -> Any:
    """A copy of schema ``node`` without the value bounds in ``_VALUE_BOUNDS`` (lengths,
    defaults, examples), structure untouched; property names are never taken for keywords.

    >>> without_bounds({"type": "object", "properties": {"maxLength": {"type": "string",
    ...                 "maxLength": 2000}}})
    {'type': 'object', 'properties': {'maxLength': {'type': 'string'}}}
    """
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k not in _VALUE_BOUNDS}
    for key in _BOUND_FREE_MAPS:
        if isinstance(node.get(key), dict):
            out[key] = {name: without_bounds(sub) for name, sub in node[key].items()}
    for key in _BOUND_FREE_NODES:
        if isinstance(node.get(key), dict):
            out[key] = without_bounds(node[key])
    for key in _BOUND_FREE_LISTS:
        if isinstance(node.get(key), list):
            out[key] = [without_bounds(sub) for sub in node[key]]
    return out
