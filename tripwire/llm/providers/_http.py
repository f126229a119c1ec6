"""What the HTTP providers share: SDK failures as typed errors, Retry-After, answer parsing.

Both official SDKs (anthropic, openai) raise their own exception trees; the router only
understands :class:`~tripwire.llm.base.ProviderError`. :func:`sdk_call` runs one SDK call
under a hard deadline and translates every way it can fail: a timeout, an HTTP status
(529 overloaded, 429 with its Retry-After, 5xx, 401/403, other 4xx), a connection that
broke or a body that stopped half-way, or a 200 whose body is not the protocol's JSON.

Error messages are built here, never copied wholesale from the SDK, and every text is passed
through :func:`redact` with the provider's key, so a key cannot reach a log or an error
string even if a server echoed it back.

>>> tool_name("triage-analyst")
'submit_triage_analyst'
>>> loads_object('```json\\n{"ok": true}\\n```')
{'ok': True}
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from tripwire.llm.base import CALLER_DEADLINE, ErrorKind, LLMError, LLMRequest, ProviderError

T = TypeVar("T")

_DETAIL_MAX = 300  # characters of a server's error message kept in ours


class MissingCredentials(LLMError):
    """A provider was configured without an API key (the message names the variable)."""


@dataclass(frozen=True, slots=True)
class SDKErrors:
    """The exception classes of one SDK that :func:`sdk_call` translates."""

    base: type[Exception]  # anthropic.AnthropicError / openai.OpenAIError
    timeout: type[Exception]  # APITimeoutError
    connection: type[Exception]  # APIConnectionError (parent of APITimeoutError)
    status: type[Exception]  # APIStatusError (has status_code, response, body)


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, else ``retry-after`` given
    in seconds or as an HTTP date; None when absent or unreadable.

    >>> parse_retry_after({"Retry-After": "2.5"})
    2.5
    >>> parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"})
    1.5
    >>> parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"},
    ...                   now=lambda: 1445412480.0)
    10.0
    >>> parse_retry_after({"retry-after": "soon"}) is None
    True
    """
    lower = {k.lower(): v for k, v in headers.items()}
    millis = _finite(lower.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000.0)
    value = lower.get("retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _finite(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def status_kind(status: int) -> ErrorKind:
    """The error kind of an HTTP status; only 429 among the 4xx is worth a retry.

    >>> [status_kind(s) for s in (529, 503, 429, 401, 403, 400, 422)]
    ['overloaded', 'server', 'rate_limited', 'auth', 'auth', 'bad_request', 'bad_request']
    """
    if status == 529:
        return "overloaded"
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth"
    if status >= 500:
        return "server"
    return "bad_request"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``.

    >>> redact("bad key sk-123 given", ["sk-123"])
    'bad key *** given'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def safe_url(url: str | None) -> str | None:
    """``url`` without a ``user:password@`` part, for reprs and messages.

    >>> safe_url("http://user:pw@gateway:4000/v1")
    'http://gateway:4000/v1'
    """
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def status_detail(body: object, fallback: str) -> str:
    """The human part of an error body (``error.message`` in both protocols)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
    if isinstance(body, str) and body.strip():
        return body
    return fallback


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 3] + "..."


def translate(
    exc: BaseException, sdk: SDKErrors, *, label: str, secrets: Iterable[str]
) -> ProviderError | None:
    """The :class:`ProviderError` for an exception an SDK call raised, or None when it
    is not a failure of the call (a bug, which must surface as itself)."""
    secrets = tuple(secrets)
    if isinstance(exc, TimeoutError | sdk.timeout):
        return ProviderError("timeout", f"{label}: no answer in time")
    if isinstance(exc, sdk.status):
        code = int(getattr(exc, "status_code", 0))
        response = getattr(exc, "response", None)
        headers = response.headers if response is not None else {}
        detail = status_detail(getattr(exc, "body", None), f"HTTP {code}")
        return ProviderError(
            status_kind(code),
            f"{label} HTTP {code}: {_shorten(redact(detail, secrets))}",
            status=code,
            retry_after_s=parse_retry_after(headers),
        )
    if isinstance(exc, sdk.connection):
        cause = exc.__cause__ or exc.__context__
        why = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        why = _shorten(redact(why, secrets))
        return ProviderError("server", f"{label}: connection failed ({why})")
    if isinstance(exc, sdk.base | ValueError):
        # A 200 whose body is not the protocol's JSON (a proxy's page, a cut-off body) or
        # that the SDK could not read: the server's fault, worth a retry like a 5xx.
        why = _shorten(redact(f"{type(exc).__name__}: {exc}", secrets))
        return ProviderError("server", f"{label}: unreadable response ({why})")
    return None


async def sdk_call(
    call: Callable[[], Awaitable[T]],
    sdk: SDKErrors,
    *,
    timeout_s: float,
    label: str,
    secrets: Iterable[str],
) -> T:
    """Await ``call()`` within ``timeout_s`` (a hard deadline over the whole exchange, where
    the SDK's own timeout is per read) and raise only :class:`ProviderError`. Under the
    router, whose deadline for the call already ends it no later, no second timer is armed."""
    try:
        if _covered(timeout_s):
            return await call()
        async with asyncio.timeout(timeout_s):
            return await call()
    except Exception as exc:
        error = translate(exc, sdk, label=label, secrets=secrets)
        if error is None:
            raise
        # ``from None``: the SDK exception holds the request, whose headers hold the key.
        raise error from None


def _covered(timeout_s: float) -> bool:
    """Does the caller's deadline (the router's) already end this call no later than
    ``timeout_s`` from now would? Then a second timer is redundant (base.CALLER_DEADLINE)."""
    outer = CALLER_DEADLINE.get()
    if outer is None:
        return False
    task, when, outer_timeout_s = outer
    return task is asyncio.current_task() and (
        # set at most that long ago, so it ends no later than ours would (no clock read)
        outer_timeout_s <= timeout_s or when <= asyncio.get_running_loop().time() + timeout_s
    )


def per_schema(fn: Callable[[type[BaseModel]], T]) -> Callable[[type[BaseModel]], T]:
    """Memoise ``fn`` per answer-schema class: generating a JSON schema costs hundreds of
    microseconds, too much for every call. What it returns is shared: callers must not
    mutate it.

    Keyed by ``id(schema)`` (a plain dict lookup on every call, where a WeakKeyDictionary
    runs Python code); a finaliser drops the entry when the class is collected, so
    hot-reloaded skills' classes still go, and before their id can be reused.
    """
    memo: dict[int, T] = {}

    def cached(schema: type[BaseModel]) -> T:
        try:
            return memo[id(schema)]
        except KeyError:
            value = memo[id(schema)] = fn(schema)
            weakref.finalize(schema, memo.pop, id(schema), None)
            return value

    return cached


@functools.lru_cache(maxsize=256)  # a handful of roles, asked on every call
def tool_name(role: str) -> str:
    """A function/tool/schema name both APIs accept (``[A-Za-z0-9_-]{1,64}``)."""
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", role).strip("_") or "answer"
    return f"submit_{slug}"[:64]


def tool_description(request: LLMRequest) -> str:
    doc = (request.schema.__doc__ or "").strip().splitlines()
    first = doc[0].strip() if doc else ""
    what = first or f"the {request.role} answer"
    return f"Submit {what.rstrip('.')} as the structured answer. Call this exactly once."


# strict=False: llama.cpp's grammars let raw control characters (a newline) into strings; the
# answer is still the shape asked for. One decoder for all calls: ``json.loads`` with an
# option builds a new one per call.
_JSON_LENIENT = json.JSONDecoder(strict=False)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)


def loads_object(text: str, *, label: str = "answer", note: str = "") -> dict[str, Any]:
    """The JSON object in ``text`` (a Markdown code fence around it is tolerated), else a
    ``malformed`` :class:`ProviderError` carrying the text for the repair prompt."""
    stripped = text.strip()
    if stripped.startswith("```"):
        fenced = _FENCE.match(stripped)
        if fenced:
            stripped = fenced.group(1).strip()
    try:
        value = _loads_stripped(stripped)
    except ValueError as exc:
        raise ProviderError(
            "malformed", f"{label} is not JSON ({exc.msg} at char {exc.pos}){note}", raw_text=text
        ) from None
    if not isinstance(value, dict):
        raise ProviderError(
            "malformed",
            f"{label} is JSON but not an object ({type(value).__name__}){note}",
            raw_text=text,
        )
    return value


def _loads_stripped(text: str) -> Any:
    """``json.loads(text, strict=False)`` for a ``text`` without surrounding whitespace."""
    try:
        value, end = _JSON_LENIENT.raw_decode(text)
        if end == len(text):
            return value
    except ValueError:
        pass
    # Not exactly one JSON document: json.loads's own way, for the error it gives.
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _JSON_LENIENT.decode(text)


def elapsed_ms(clock: Callable[[], float], started: float) -> float:
    return (clock() - started) * 1000.0


def estimate_tokens(chars: int) -> int:
    """A rough token count (4 characters a token) for servers that report no usage: the
    budget must not count such calls as free."""
    return math.ceil(chars / 4)
