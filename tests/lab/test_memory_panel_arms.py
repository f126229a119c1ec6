"""The lab's memory and panel arms: ``tripwire eval --policies rules,rules_memory,rules_panel``.

The rules analyst ignores the prompt, so ``rules_memory`` is a control that must decide as
``rules`` does; the panel asks three analysts per incident, which the cost table shows.
"""

import json

from tripwire.commands import main
from tripwire.lab.policies import DECISIONS_UPDATE, EvalContext, select


def test_the_arms_flip_only_their_setting():
    ctx = EvalContext()
    arms = {p.name: p for p in select(["rules", "rules_memory", "rules_panel"], ctx)}
    rules = arms["rules"].configure(ctx)
    memory = arms["rules_memory"].configure(ctx)
    panel = arms["rules_panel"].configure(ctx)
    assert DECISIONS_UPDATE not in rules
    assert memory[DECISIONS_UPDATE]["memory"].enabled is True
    assert panel[DECISIONS_UPDATE]["panel"].enabled is True
    assert {k: v for k, v in memory.items() if k != DECISIONS_UPDATE} == rules


def test_eval_measures_memory_and_the_panel_on_and_off(tmp_path, capsys):
    argv = ["eval", "--seeds", "1", "--symbols", "3", "--days", "0.1", "--policies",
            "rules,rules_memory,rules_panel", "--in-process", "--json", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    d, cost = out["decisions"], out["cost"]
    assert d["rules_memory"]["outcomes"] == d["rules"]["outcomes"]  # the control
    assert out["triage"]["rules_memory"]["macro_f1"] == out["triage"]["rules"]["macro_f1"]
    per_incident = cost["rules_panel"]["calls_per_incident"]["mean"]
    assert per_incident >= 3  # three members (then the strategist, unless it failed closed)
    assert per_incident > cost["rules"]["calls_per_incident"]["mean"]


def test_an_arm_switching_memory_on_keeps_the_configured_horizon():
    from actors.eval import _on_top
    from tripwire.decisions.memory import MemorySettings

    configured = MemorySettings(enabled=False, max_items=3, horizon_s=120.0)
    flipped = _on_top(configured, MemorySettings(enabled=True))
    assert flipped == MemorySettings(enabled=True, max_items=3, horizon_s=120.0)
    other = MemorySettings(enabled=True, max_items=9)  # a full setting replaces the section
    assert _on_top(configured, other) is other
