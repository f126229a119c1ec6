"""One configuration model: every ``[section]`` of the config file is a pydantic model.

:class:`Section` is the base of the flat sections (``[pipeline]``, ``[time]``, ``[serve]``,
``[watchdog]``, ...): frozen, unknown keys refused, strict types (``true`` is not a number,
``"3"`` not an integer, ``2.0`` not an integer), bounds as ``Field`` constraints, so the
JSON Schema (``tripwire config schema``) says what the validator enforces. :func:`validate`
turns pydantic's errors into the one message style of the project, naming the key::

    pipeline.shards must be an integer >= 1, got 0
    serve.port must be an integer in [1, 65535], got 0
    time.max_age_s must be a number of seconds in (0, 315360000], got -1
    watchdog.nope is not a known key of [watchdog] (known: api_timeout_s, ...)

A field may name its kind in ``json_schema_extra={"kind": "a number of seconds"}``.
:func:`tripwire.config.load_settings` adds where a bad value came from (``(from
TRIPWIRE_PIPELINE__SHARDS)``).

>>> from pydantic import Field
>>> class Demo(Section):
...     n: int = Field(2, ge=1)
>>> validate(Demo, {"n": 0}, "demo")
Traceback (most recent call last):
...
ValueError: demo.n must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

import annotated_types as at
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

M = TypeVar("M")

# The config of section models, and of pydantic dataclasses (sections that callers copy with
# dataclasses.replace or build positionally: ``@dataclass(config=STRICT, frozen=True)``).
STRICT = ConfigDict(extra="forbid", strict=True)


class Section(BaseModel):
    """A flat config table: frozen, strict, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def model_fields(model: Any) -> dict[str, Any]:
    """The FieldInfo of each key of a section model or pydantic dataclass."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return dict(model.model_fields)
    return dict(model.__pydantic_fields__)


def json_schema(model: Any) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_json_schema()
    return TypeAdapter(model).json_schema()


def validate(model: type[M], table: Any, section: str) -> M:
    """``table`` as ``model``; a ValueError naming the first bad key of ``[section]``."""
    if not isinstance(table, Mapping):
        raise ValueError(f"{section} must be a table ([{section}]), got {table!r}")
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(dict(table))
        return model(**{str(k): v for k, v in table.items()})  # a dataclass validates itself
    except ValidationError as exc:
        raise ValueError(describe(model, exc.errors()[0], section)) from None


def describe(model: Any, err: Mapping[str, Any], section: str) -> str:
    """One pydantic error as ``<section>.<key> <what was wrong>``."""
    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
    key = loc[0] if loc else ""
    name = f"{section}.{key}" if key else section
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        known = ", ".join(sorted(model_fields(model)))
        return f"{name} is not a known key of [{section}] (known: {known})"
    if err["type"] == "value_error":  # a validator's own message, already naming the key
        return str(err["msg"]).removeprefix("Value error, ")
    field = model_fields(model).get(key)
    if field is None:
        return f"{name}: {err['msg']}"
    return f"{name} must be {expected(field)}, got {err.get('input')!r}"


def expected(field: Any) -> str:
    """What a field takes, in words: ``an integer in [1, 65535]``, ``true or false``..."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "expect" in extra:
        return str(extra["expect"])
    ann = field.annotation
    if ann is bool:
        return "true or false"
    if ann is str:
        return "a string"
    if ann in (str | None, "str | None"):
        return "a string or nothing"
    kind = extra.get("kind") or ("an integer" if ann is int else "a number")
    lo = hi = None
    lo_open = hi_open = False
    for m in field.metadata:
        if isinstance(m, at.Ge):
            lo = m.ge
        elif isinstance(m, at.Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, at.Le):
            hi = m.le
        elif isinstance(m, at.Lt):
            hi, hi_open = m.lt, True
    if lo is not None and hi is not None:
        return (f"{kind} in {'(' if lo_open else '['}{_num(lo)}, "
                f"{_num(hi)}{')' if hi_open else ']'}")
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo!r}"
    if hi is not None:
        return f"{kind} {'<' if hi_open else '<='} {hi!r}"
    return kind


def _num(x: float) -> str:
    """``1``, ``0.05``, ``3600``, ``315360000``: whole numbers without a point."""
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return str(int(x)) if float(x).is_integer() else repr(float(x))
