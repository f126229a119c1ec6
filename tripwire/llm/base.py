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
import math
import weakref
from contextvars import ContextVar
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
        return _sha256(self._canonical().encode()).hexdigest()

    def _canonical(self) -> str:
        r"""``json.dumps([role, system, [[role, content], ...], schema digest, max_tokens,
        temperature], separators=(",", ":"), ensure_ascii=False)``: the text behind the
        fingerprint (cassettes are keyed by it, so it must never change).

        The router takes it on every call, so the usual shape is written out directly with
        the JSON encoder's own string escaping (a third of the encoder's cost); any other
        (a non-finite temperature, a field of an unexpected type) goes through the encoder.

        >>> from pydantic import BaseModel
        >>> class A(BaseModel):
        ...     x: int
        >>> r = LLMRequest("r", 'say "hé"\n', (Message("user", "a\tb"),), A, 10, 0.5)
        >>> doc = [r.role, r.system, [["user", "a\tb"]], _schema_digest(A), 10, 0.5]
        >>> r._canonical() == json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        True
        """
        max_tokens, temperature = self.max_tokens, self.temperature
        if type(max_tokens) is int and type(temperature) is float and math.isfinite(temperature):
            q = _json_string
            try:
                turns = ",".join([f"[{q(m.role)},{q(m.content)}]" for m in self.messages])
                return (
                    f"[{q(self.role)},{q(self.system)},[{turns}],"
                    f'"{_schema_digest(self.schema)}",{max_tokens!r},{temperature!r}]'
                )
            except TypeError:  # a field that is not a string: the encoder knows what to do
                pass
        return _FP_JSON.encode([
            self.role,
            self.system,
            [[m.role, m.content] for m in self.messages],
            _schema_digest(self.schema),
            max_tokens,
            temperature,
        ])


# CPython's own SHA-256 where there is one: the same digest as hashlib's, which goes through
# OpenSSL 3's EVP layer and costs several microseconds per call on a cold cache.
try:
    from _sha256 import sha256 as _sha256
except ImportError:  # an interpreter without it (3.12 renamed it _sha2)
    from hashlib import sha256 as _sha256

# ``json.dumps`` with any option builds a new encoder per call: the fingerprint keeps one,
# and the string escaping that encoder applies (ensure_ascii=False).
_FP_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_json_string = json.encoder.encode_basestring


# Generating a JSON schema costs ~170 us and serialising it again ~10 us; the fingerprint
# is on every call's hot path (cache lookups must take tens of us), so it reads a per-class
# digest of the canonical schema, by id(class): a plain dict lookup. A finaliser drops the
# entry when the class is collected (hot-reloaded skills), before its id can be reused.
_SCHEMA_DIGEST: dict[int, str] = {}


def _schema_digest(schema: type[BaseModel]) -> str:
    digest = _SCHEMA_DIGEST.get(id(schema))
    if digest is None:
        canonical = json.dumps(schema.model_json_schema(), sort_keys=True,
                               separators=(",", ":"), ensure_ascii=False)
        digest = _SCHEMA_DIGEST[id(schema)] = hashlib.sha256(canonical.encode()).hexdigest()
        weakref.finalize(schema, _SCHEMA_DIGEST.pop, id(schema), None)
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


# The hard deadline a caller already enforces around ``Provider.complete``: (task, event loop
# time, timeout in seconds). The router sets it while its own deadline runs. A provider that
# would arm a timer of its own for the same exchange may leave it out when this deadline is
# on the same task and ends no later: one timer less per call, and the same outcome (of two
# deadlines the earlier one fires; on a tie the router's, which was set first, wins).
CALLER_DEADLINE: ContextVar[tuple[object, float, float] | None] = ContextVar(
    "tripwire_llm_caller_deadline", default=None
)


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
