"""The HTTP providers: Anthropic, OpenAI, and OpenAI-compatible servers.

Each implements :class:`tripwire.llm.base.Provider` over an official SDK with the SDK's
retries off (the router retries) and every failure typed as a
:class:`~tripwire.llm.base.ProviderError`. The SDKs are imported on first use (the
``anthropic`` package alone takes about a second), so configurations that only use the
offline routes never pay for them.

>>> from tripwire.llm.providers import parse_retry_after
>>> parse_retry_after({"retry-after": "3"})
3.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tripwire.llm.providers._http import MissingCredentials, parse_retry_after

if TYPE_CHECKING:
    from tripwire.llm.providers.anthropic import AnthropicProvider
    from tripwire.llm.providers.openai import OpenAIProvider

__all__ = ["AnthropicProvider", "MissingCredentials", "OpenAIProvider", "parse_retry_after"]

_LAZY = {
    "AnthropicProvider": "tripwire.llm.providers.anthropic",
    "OpenAIProvider": "tripwire.llm.providers.openai",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
