"""Loopback HTTP servers that speak the Anthropic and OpenAI wire formats, with faults.

The official SDKs bring their own HTTP stack, so tests cannot patch a transport: they talk
to a real server on 127.0.0.1. :class:`AnthropicServer` answers ``POST /v1/messages`` and
:class:`OpenAIServer` answers ``POST /v1/chat/completions`` with the bodies, headers, ids,
usage blocks, stop reasons and tool-call shapes the SDKs parse.

Each request takes the next :class:`Reply` of the server's script (``push`` adds more);
when the script is empty the ``default`` answers (a reply, or a function of the request
body for benchmarks), and without one the server answers 500 "script exhausted" so a test
that made more calls than it expected fails visibly. Replies:

- ``ok(answer, usage=(in, out))``: the answer as a forced tool call (Anthropic ``tool_use``
  block; OpenAI ``tool_calls``) when the request asked for one, else as JSON content;
- ``invalid(answer)``: the same, named for a schema-violating answer;
- ``slow(delay_s, reply)``: wait, then ``reply`` (a timeout when the client gives up first);
- ``status(code, message, retry_after=..., retry_after_ms=...)``: an error in the
  protocol's error shape (500, 529 overloaded, 429 with Retry-After, 401, 400, ...);
- ``malformed(text)``: non-JSON text where the JSON should be (content or tool arguments);
- ``truncated()``: a 200 whose Content-Length promises more than is sent before the close;
- ``drop()``: close the connection without an answer;
- ``garbage(text)``: a 200 whose body is not the protocol's JSON (a proxy's error page).

Server capabilities model OpenAI-compatible servers: ``json_schema="reject"`` answers 400
to ``response_format: json_schema`` (older llama.cpp and vLLM builds), ``"reject_500"``
answers 500 with a request-validation message (llama-cpp-python's server does exactly that),
``"ignore"`` answers prose as an unconstrained model would; ``tools`` likewise. Capability answers do not take a
reply from the script: the reply stays for the request that the model really answers.

Every request is recorded (path, lower-cased headers, decoded body) so tests can assert
routing order, retry counts and that the API key was sent. The servers run inside a test's
event loop (``async with``) or, for sync tests, on a background thread with its own loop
(``with``). Nothing is logged: no access log, so a key in a header never reaches a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Self

from aiohttp import web

Capability = Literal["ok", "reject", "reject_500", "ignore"]

# What an unconstrained model says when the server drops the JSON constraint.
PROSE = "Looking at the move, this is most likely a technical spike; nothing to do."


@dataclass(frozen=True)
class Reply:
    """One scripted answer; build it with the helpers below."""

    kind: Literal["ok", "status", "malformed", "truncated", "drop", "garbage"]
    answer: Mapping[str, Any] | None = None
    usage: tuple[int, int] | None = (11, 7)
    delay_s: float = 0.0
    status: int = 200
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    model: str | None = None  # the model the server reports (default: the one asked for)
    stop: str | None = None  # stop/finish reason (default: the natural one for the answer)


def ok(
    answer: Mapping[str, Any],
    *,
    usage: tuple[int, int] | None = (11, 7),
    model: str | None = None,
    stop: str | None = None,
) -> Reply:
    """A successful answer; ``usage`` None leaves the usage block out (some servers do);
    ``stop`` overrides the stop reason (``"max_tokens"``, ``"length"``)."""
    return Reply("ok", answer=answer, usage=usage, model=model, stop=stop)


def invalid(answer: Mapping[str, Any], *, usage: tuple[int, int] | None = (11, 7)) -> Reply:
    """Valid JSON that violates the caller's schema: the wire cannot tell it from ``ok``."""
    return ok(answer, usage=usage)


def slow(delay_s: float, reply: Reply) -> Reply:
    """``reply`` after ``delay_s`` seconds."""
    return replace(reply, delay_s=delay_s)


def status(
    code: int,
    message: str = "",
    *,
    retry_after: float | str | None = None,
    retry_after_ms: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An HTTP error; ``retry_after`` is sent verbatim (seconds or an HTTP date)."""
    extra = dict(headers or {})
    if retry_after is not None:
        extra["retry-after"] = str(retry_after)
    if retry_after_ms is not None:
        extra["retry-after-ms"] = str(retry_after_ms)
    return Reply(
        "status", status=code, message=message or _REASONS.get(code, "error"), headers=extra
    )


def malformed(text: str = "Sure! {classification: TECHNICAL_SPIKE, confidence: high") -> Reply:
    """Text that is not JSON where the JSON answer belongs."""
    return Reply("malformed", text=text)


def truncated() -> Reply:
    """A 200 whose body stops half-way (Content-Length larger than what is sent)."""
    return Reply("truncated")


def drop() -> Reply:
    """The connection closes before any answer (a reset)."""
    return Reply("drop")


def garbage(
    text: str = "<html><body>502 Bad Gateway</body></html>", content_type: str = "text/html"
) -> Reply:
    """A 200 whose body is not the protocol's JSON at all."""
    return Reply("garbage", text=text, headers={"content-type": content_type})


_REASONS = {
    400: "invalid request",
    401: "invalid x-api-key",
    403: "permission denied",
    404: "not found",
    429: "rate limit exceeded",
    500: "internal server error",
    503: "service unavailable",
    529: "Overloaded",
}


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # decoded JSON, or the raw text when it was not JSON
    at: float  # time.monotonic() on arrival


Responder = Callable[[Any], Reply]


class LoopbackServer(ABC):
    """The shared machinery: script, recording, lifecycle, faults. Subclasses render."""

    path: ClassVar[str]

    def __init__(
        self,
        script: Iterable[Reply] = (),
        *,
        default: Reply | Responder | None = None,
        require_key: str | None = None,
    ) -> None:
        self.script: deque[Reply] = deque(script)
        self.default = default
        self.require_key = require_key
        self.requests: list[Recorded] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- script ---------------------------------------------------------------------------

    def push(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def _next_reply(self, body: Any) -> Reply:
        if self.script:
            return self.script.popleft()
        if isinstance(self.default, Reply):
            return self.default
        if self.default is not None:
            return self.default(body)
        return status(500, "script exhausted: the test made more calls than it scripted")

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        # Short shutdown: a slow reply still sleeping must not hold the test up.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __enter__(self) -> Self:
        """Serve from a background thread with its own event loop (for sync tests)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"{type(self).__name__}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    @property
    def port(self) -> int:
        assert self._port is not None, "start the server first"
        return self._port

    @property
    @abstractmethod
    def base_url(self) -> str:
        """The URL the SDK is given (its own path prefix included)."""

    # -- one request ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Recorded(request.path, headers, body, time.monotonic()))
        if self.require_key is not None and not self._key_ok(headers):
            return self._error(status(401, "invalid x-api-key"))
        early = self._capability_answer(body)
        if early is not None:
            return early
        reply = self._next_reply(body)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.kind == "status":
            return self._error(reply)
        if reply.kind == "truncated":
            return await self._truncated(request, body)
        if reply.kind == "drop":
            return await self._drop(request)
        if reply.kind == "garbage":
            return web.Response(status=200, body=reply.text.encode(), headers=reply.headers)
        return self._json(200, self._render(body, reply))

    def _key_ok(self, headers: Mapping[str, str]) -> bool:
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        return key == self.require_key

    def _capability_answer(self, body: Any) -> web.Response | None:
        return None

    @abstractmethod
    def _render(self, body: Any, reply: Reply) -> dict[str, Any]:
        """The protocol's success body for ``reply``."""

    @abstractmethod
    def _error_body(self, reply: Reply) -> dict[str, Any]:
        """The protocol's error body for ``reply``."""

    def _error(self, reply: Reply) -> web.Response:
        return self._json(reply.status, self._error_body(reply), reply.headers)

    def _json(
        self, code: int, doc: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> web.Response:
        extra = {**self._id_headers(), **(headers or {})}
        return web.json_response(doc, status=code, headers=extra)

    def _id_headers(self) -> dict[str, str]:
        return {}

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    async def _truncated(self, request: web.Request, body: Any) -> web.StreamResponse:
        payload = json.dumps(self._render(body, ok({"half": "of an answer"}))).encode()
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.content_length = len(payload) + 64  # promise more than will come
        await response.prepare(request)
        await response.write(payload[: len(payload) // 2])
        await self._close(request)
        return response

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        await self._close(request)
        return web.Response(status=500)  # never reaches the client: the socket is gone

    @staticmethod
    async def _close(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.close()
        # Let the close reach the socket before aiohttp tries to finish the response.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)


class AnthropicServer(LoopbackServer):
    """``POST /v1/messages`` as the Anthropic Messages API answers it."""

    path = "/v1/messages"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _id_headers(self) -> dict[str, str]:
        return {"request-id": self._next_id("req_")}

    def _render(self, body: Any, reply: Reply) -> dict[str, Any]:
        tool = _anthropic_tool_name(body)
        if reply.kind == "malformed":
            content = [{"type": "text", "text": reply.text}]
            stop = "end_turn"
        elif tool is not None:
            content = [
                {
                    "type": "tool_use",
                    "id": self._next_id("toolu_"),
                    "name": tool,
                    "input": dict(reply.answer or {}),
                }
            ]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": json.dumps(reply.answer)}]
            stop = "end_turn"
        usage_in, usage_out = reply.usage or (0, 0)
        return {
            "id": self._next_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": reply.model or _field(body, "model", "claude-test"),
            "content": content,
            "stop_reason": reply.stop or stop,
            "stop_sequence": None,
            "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
        }

    def _error_body(self, reply: Reply) -> dict[str, Any]:
        kinds = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }
        return {
            "type": "error",
            "error": {"type": kinds.get(reply.status, "api_error"), "message": reply.message},
        }


class OpenAIServer(LoopbackServer):
    """``POST /v1/chat/completions`` as OpenAI (or a compatible server) answers it."""

    path = "/v1/chat/completions"

    def __init__(
        self,
        script: Iterable[Reply] = (),
        *,
        default: Reply | Responder | None = None,
        require_key: str | None = None,
        json_schema: Capability = "ok",
        tools: Capability = "ok",
    ) -> None:
        super().__init__(script, default=default, require_key=require_key)
        self.json_schema = json_schema
        self.tools = tools

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _id_headers(self) -> dict[str, str]:
        return {"x-request-id": self._next_id("req_")}

    def _capability_answer(self, body: Any) -> web.Response | None:
        wants_schema = _field(_field(body, "response_format", {}), "type", "") == "json_schema"
        wants_tools = bool(_field(body, "tools", None))
        if wants_schema and self.json_schema in ("reject", "reject_500"):
            return self._error(_refusal(self.json_schema, "response_format", "type"))
        if wants_tools and self.tools in ("reject", "reject_500"):
            return self._error(_refusal(self.tools, "tool_choice", "type"))
        ignored = (wants_schema and self.json_schema == "ignore") or (
            wants_tools and self.tools == "ignore"
        )
        if ignored:
            return self._json(
                200,
                self._completion(body, {"role": "assistant", "content": PROSE}, "stop", (9, 12)),
            )
        return None

    def _render(self, body: Any, reply: Reply) -> dict[str, Any]:
        tool = _openai_tool_name(body)
        text = reply.text if reply.kind == "malformed" else json.dumps(reply.answer)
        if tool is not None:
            call = {
                "id": self._next_id("call_"),
                "type": "function",
                "function": {"name": tool, "arguments": text},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": text}
            finish = "stop"
        return self._completion(body, message, reply.stop or finish, reply.usage, reply.model)

    def _completion(
        self,
        body: Any,
        message: dict[str, Any],
        finish: str,
        usage: tuple[int, int] | None,
        model: str | None = None,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self._next_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model or _field(body, "model", "gpt-test"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
        }
        if usage is not None:
            doc["usage"] = {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": usage[0] + usage[1],
            }
        return doc

    def _error_body(self, reply: Reply) -> dict[str, Any]:
        kinds = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
        return {
            "error": {
                "message": reply.message,
                "type": "invalid_request_error" if reply.status < 500 else "server_error",
                "param": None,
                "code": kinds.get(reply.status),
            }
        }


def _refusal(how: Capability, *loc: str) -> Reply:
    if how == "reject":
        return status(400, f"{loc[0]} type is not supported by this server")
    # llama-cpp-python: pydantic's request validation error, served as a 500.
    where = ("body", *loc)
    return status(
        500,
        f"1 validation error: {{'type': 'literal_error', 'loc': {where!r}, "
        "'msg': \"Input should be 'text' or 'json_object'\"}",
    )


def _field(doc: Any, key: str, default: Any) -> Any:
    return doc.get(key, default) if isinstance(doc, dict) else default


def _anthropic_tool_name(body: Any) -> str | None:
    choice = _field(body, "tool_choice", {})
    if _field(choice, "type", "") == "tool":
        return str(choice["name"])
    tools = _field(body, "tools", [])
    return str(tools[0]["name"]) if tools else None


def _openai_tool_name(body: Any) -> str | None:
    choice = _field(body, "tool_choice", None)
    function = _field(choice, "function", {})
    if _field(function, "name", None):
        return str(function["name"])
    tools = _field(body, "tools", [])
    return str(tools[0]["function"]["name"]) if tools else None
