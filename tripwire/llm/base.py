"""The LLM port: requests, results, the provider interface, and the errors of the layer.

A :class:`Provider` turns an :class:`LLMRequest` (a system prompt, messages, and the pydantic
model the answer must fit) into a :class:`ProviderResult`: the parsed JSON object as the
model produced it, *not yet validated*, with token usage and latency. The router
(tripwire.llm.router) validates, repairs once, retries, fails over, caches, budgets and
records; nothing unvalidated leaves the layer as an :class:`LLMResponse`.

Errors are typed so the router can decide: :class:`ProviderError` says whether a failure
is worth a retry (timeouts, 5xx, 529 overloaded, 429 with its Retry-After) or not (other
4xx), and callers get :class:`AllRoutesFailed` (then they HOLD), never a raw SDK error.

>>> from pydantic import BaseModel
>>> class Echo(BaseModel):
...     text: str
>>> r = LLMRequest(role="echo", system="Repeat.", messages=(Message("user", "hi"),),
...                schema=Echo)
>>> r.fingerprint() == LLMRequest(role="echo", system="Repeat.",
...                               messages=(Message("user", "hi"),), schema=Echo).fingerprint()
True
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One structured call.

    ``role`` is the skill (``triage-analyst``, ...); ``schema`` the pydantic model of the
    answer; ``context`` the structured facts behind the prompt (e.g. the incident), which
    the offline rules analyst and the semantic cache read instead of the prose.
    """

    role: str
    system: str
    messages: tuple[Message, ...]
    schema: type[BaseModel]
    max_tokens: int = 1024
    temperature: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)

    def schema_json(self) -> dict[str, Any]:
        return self.schema.model_json_schema()

    def fingerprint(self) -> str:
        """SHA-256 over everything that determines the answer (not ``context``, which
        only restates the prompt's facts)."""
        doc = [
            self.role,
            self.system,
            [[m.role, m.content] for m in self.messages],
            _schema_digest(self.schema),
            self.max_tokens,
            self.temperature,
        ]
        blob = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


# Generating a JSON schema costs ~170 us and serialising it again ~10 us; the fingerprint
# is on every call's hot path (cache lookups must take tens of us), so it reads a per-class
# digest of the canonical schema. Weak keys let hot-reloaded skills' classes be collected.
_SCHEMA_DIGEST: weakref.WeakKeyDictionary[type[BaseModel], str] = weakref.WeakKeyDictionary()


def _schema_digest(schema: type[BaseModel]) -> str:
    digest = _SCHEMA_DIGEST.get(schema)
    if digest is None:
        canonical = json.dumps(schema.model_json_schema(), sort_keys=True,
                               separators=(",", ":"), ensure_ascii=False)
        digest = _SCHEMA_DIGEST[schema] = hashlib.sha256(canonical.encode()).hexdigest()
    return digest


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """What a provider got back: the JSON object (unvalidated) and its cost drivers."""

    data: dict[str, Any]
    raw_text: str
    usage: Usage
    model: str
    latency_ms: float
    source: str  # provider kind: "anthropic", "openai", "openai-compatible", "rules", ...


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """A validated answer, with where it came from and what it cost."""

    value: BaseModel
    route: str
    model: str
    source: str
    usage: Usage
    cost_usd: float
    latency_ms: float
    cached: bool = False
    attempts: int = 1  # provider calls made for this answer (retries, repairs, failovers)
    fingerprint: str = ""


@runtime_checkable
class Provider(Protocol):
    """One model behind one API. Must be safe to call concurrently from one event loop."""

    kind: str
    model: str

    async def complete(self, request: LLMRequest, *, timeout_s: float) -> ProviderResult: ...

    async def aclose(self) -> None: ...


# ----------------------------------------------------------------------------- errors


class LLMError(Exception):
    """Base of every error the LLM layer raises."""


ErrorKind = Literal[
    "timeout",  # no answer in time (retryable)
    "overloaded",  # HTTP 529 / provider overloaded (retryable)
    "rate_limited",  # HTTP 429 (retryable, honour retry_after_s)
    "server",  # HTTP 5xx, connection reset, truncated stream (retryable)
    "auth",  # 401/403 (not retryable: fix the key)
    "bad_request",  # other 4xx (not retryable: fix the request)
    "malformed",  # the answer is not JSON or not the shape asked for (repair once)
]

RETRYABLE: frozenset[str] = frozenset({"timeout", "overloaded", "rate_limited", "server"})


class ProviderError(LLMError):
    """A provider call failed; ``kind`` says how, and so whether to retry."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        raw_text: str | None = None,
    ) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        self.raw_text = raw_text  # for "malformed": what came back, for the repair prompt

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class BudgetExceeded(LLMError):
    """A per-call or per-day token/money budget refuses the call (nothing was sent)."""


class AllRoutesFailed(LLMError):
    """Every route failed or was unavailable; ``failures`` says what happened on each."""

    def __init__(self, role: str, failures: list[tuple[str, str]]) -> None:
        detail = "; ".join(f"{route}: {why}" for route, why in failures) or "no routes"
        super().__init__(f"no valid answer for {role!r}: {detail}")
        self.role = role
        self.failures = failures
