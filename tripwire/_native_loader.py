"""Import the compiled detectors with a message that says how to build them."""

from __future__ import annotations

from types import ModuleType


def load() -> ModuleType:
    try:
        from tripwire import _native
    except ImportError as exc:  # pragma: no cover - exercised only on a broken install
        raise ImportError(
            "tripwire._native (the C++ detectors) is not built. Run `make setup` (or "
            "`pip install -e .` in the project directory); it needs a C++17 compiler and "
            f"CMake >= 3.18. Original error: {exc}"
        ) from exc
    return _native
