"""Import the compiled detectors with a message that says how to build them."""

from __future__ import annotations

import importlib
from types import ModuleType


def load(name: str = "_native") -> ModuleType:
    """``_native`` (the detectors) or ``_feedcheck`` (the feeds' validation kernel)."""
    try:
        return importlib.import_module(f"tripwire.{name}")
    except ImportError as exc:  # pragma: no cover - exercised only on a broken install
        raise ImportError(
            f"tripwire.{name} (compiled C++) is not built. Run `make setup` (or "
            "`pip install -e .` in the project directory); it needs a C++17 compiler and "
            f"CMake >= 3.18. Original error: {exc}"
        ) from exc
