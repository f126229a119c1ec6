"""The ``tripwire`` console script's module (pyproject ``[project.scripts]``).

Every command is registered in :mod:`tripwire.commands` (the domain's) or by the runtime
layers' ``commands`` modules; this module only names the entry point, and keeps
``python -m tripwire.cli`` working.
"""

from __future__ import annotations

from tripwire.commands import build_parser, entry, main

_entry = entry  # the name pyproject's console script points at

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    entry()
