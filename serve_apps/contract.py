"""The HTTP API's contract at its edge: which text and numbers it accepts, and its error body.

**The text rule** (one rule, for every text field of every body, query and path): a string
may hold any Unicode character except

* the C0 control characters U+0000..U+001F, other than TAB (U+0009), LF (U+000A) and
  CR (U+000D) -- so NUL, ESC and their kind never reach the database, a log line or a
  terminal;
* DEL (U+007F) and the C1 control characters U+0080..U+009F;
* unpaired surrogates (U+D800..U+DFFF), which JSON's ``\\uXXXX`` escapes can spell but
  UTF-8 -- and so PostgreSQL -- cannot store.

A request breaking it is a 422 naming the field (``reason``, ``items.0.headline``,
``incidents.0.news.1.source``, the query parameter's name), and nothing is written.

**Integers** are int64 wherever they enter (``ts_ns``, ``trade_id``, any integer of an
incident): one outside ``-2**63 .. 2**63-1`` is a 422 naming the field (``ticks.0.ts_ns``).

>>> text_error("halt\\x00now") is not None, text_error("line one\\nline two") is None
(True, True)
>>> first_problem({"a": [1, {"b": "x\\x1b[31m"}]}, "incidents.0")
('incidents.0.a.1.b', 'control character U+001B is not allowed in text')
>>> first_problem({"ts_ns": 2**64}, "incidents.0")[0]
'incidents.0.ts_ns'
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# The same rule as a JSON-schema pattern (ECMA-262), so the OpenAPI schema tells clients and
# fuzzers what is accepted; surrogates cannot be written in a pattern and are checked in code.
TEXT_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
KEY_PATTERN = r"^[!-~]{1,128}$"  # an Idempotency-Key: 1-128 visible ASCII characters
_KEY = re.compile(KEY_PATTERN)


def text_error(value: str) -> str | None:
    """Why ``value`` breaks the text rule, or None."""
    bad = _BAD.search(value)
    if bad is None:
        return None
    c = ord(bad.group())
    kind = "unpaired surrogate" if 0xD800 <= c <= 0xDFFF else "control character"
    return f"{kind} U+{c:04X} is not allowed in text"


def _check(value: str) -> str:
    problem = text_error(value)
    if problem is not None:
        raise ValueError(problem)  # pydantic names the field; the API answers 422
    return value


# A ``str`` under the text rule; add constraints with ``Field`` as usual
# (``reason: Text = Field(min_length=1, max_length=500)``).
Text = Annotated[str, AfterValidator(_check), Field(json_schema_extra={"pattern": TEXT_PATTERN})]


Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]


def first_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first string breaking the text rule or integer outside int64 in a JSON value,
    as (dotted path, why); None when there is none. Walks dict keys too."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, str):
            problem = text_error(v)
            if problem is not None:
                return where, problem
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int):
            if not INT64_MIN <= v <= INT64_MAX:
                return where, f"{v} is outside int64"
        elif isinstance(v, dict):
            for k, item in reversed(list(v.items())):
                key = str(k)
                problem = text_error(key)
                if problem is not None:
                    return f"{where}.{key!r}", f"key: {problem}"
                stack.append((f"{where}.{key}", item))
        elif isinstance(v, list | tuple):
            stack.extend((f"{where}.{i}", item) for i, item in reversed(list(enumerate(v))))
    return None


def key_error(key: str) -> str | None:
    """Why ``key`` is not a usable Idempotency-Key / batch id, or None."""
    if _KEY.fullmatch(key) is None:
        return "must be 1-128 visible ASCII characters (e.g. a UUID)"
    return None


# -- the error body in the OpenAPI schema ------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: invalid, unauthorized, not_found, "
                                  "method_not_allowed, conflict, database_unavailable, ...")
    message: str = Field(description="what was wrong, for a person")
    field: str | None = Field(description="the body field, query or path parameter or "
                                          "header at fault (dotted path), when one is")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API."""

    error: ErrorDetail


_WHY = {
    400: "the body cannot be parsed (not UTF-8, not JSON)",
    401: "a valid bearer token is required (checked before the body is read)",
    404: "no such resource",
    409: "the request conflicts with the current state",
    413: "the body is larger than the API accepts",
    415: "the body's content type is not accepted",
    422: "a body field, query or path parameter or header is invalid (named in `field`)",
    500: "an unexpected fault (nothing secret in the body)",
    503: "a service the API depends on (the database, a deployment) is unavailable; "
         "nothing was done unless the message says so, and a retry is safe",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route: the given 4xx/5xx codes plus 500 and 503, each with
    the error body."""
    out: dict[int | str, dict[str, Any]] = {}
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for code in sorted({*codes, 500, 503}):
        out[code] = {"description": _WHY.get(code, "error"), "content": body}
    return out


def error_schemas() -> dict[str, Any]:
    """The error body's JSON schemas for ``components.schemas`` (the routes refer to them;
    FastAPI registers models only for responses declared when a route is made)."""
    schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "ErrorBody": schema}
