"""The route's training cutoff: validated in config, reported by the router to every verdict."""

import pytest

from graphs.triage import _cutoff
from tripwire.llm.config import load_llm_config
from tripwire.llm.factory import build_llm


def test_training_cutoff_is_an_iso_date():
    with pytest.raises(ValueError, match=r"llm.routes\[0\].training_cutoff"):
        load_llm_config({"routes": [{"name": "r", "provider": "rules",
                                     "training_cutoff": "last spring"}]})


def test_the_router_reports_each_routes_cutoff_to_the_verdict():
    cfg = load_llm_config({"routes": [
        {"name": "fx", "provider": "fixed", "training_cutoff": "2024-10-01"}]})
    stack = build_llm(cfg, env={})
    assert _cutoff(stack.router, "fx") == "2024-10-01"
    assert _cutoff(stack.router, "rules") is None  # the appended rules fallback: none
    assert _cutoff(object(), "fx") is None  # a router double without cutoffs
