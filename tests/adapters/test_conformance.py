"""Every live feed adapter against the conformance suite (tests/adapters/conformance.py).

Kits are found, not listed: each ``tests/adapters/<venue>/kit.py`` with a ``KIT``.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from pathlib import Path

import pytest

from tests.adapters.conformance import CHECKS, VenueKit

HERE = Path(__file__).parent


def _kits() -> list[VenueKit]:
    kits = []
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda i: i.name):
        if info.ispkg and (HERE / info.name / "kit.py").is_file():
            kits.append(importlib.import_module(f"tests.adapters.{info.name}.kit").KIT)
    return kits


KITS = _kits()


def test_every_live_adapter_has_a_kit():
    assert {"binance", "ccxt-okx"} <= {k.name for k in KITS}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("kit", KITS, ids=[k.name for k in KITS])
def test_conformance(kit: VenueKit, check: str) -> None:
    asyncio.run(CHECKS[check](kit))
