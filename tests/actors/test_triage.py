"""`tripwire triage` end to end: scenario incidents, configured routes, the real OpenAI SDK
against a loopback server, failover on 529, and the cost ledger read back by `llm costs`."""

from __future__ import annotations

import json

import pytest

from tests.llm.servers import OpenAIServer, ok, status
from tripwire.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

VERDICT = {"classification": "NEWS_DRIVEN", "confidence": 0.8, "reasoning": "a headline",
           "key_factors": ["hack headline", "z -9"], "source": "llm"}


def test_demo_without_keys_answers_offline_with_the_rules_analyst(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRIPWIRE_DATA__DIR", str(tmp_path))
    assert main(["triage", "--demo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    got = {r["event"]: r["verdict"]["classification"] for r in out["results"]}
    assert got == {"news_shock": "NEWS_DRIVEN", "liquidation_cascade": "LIQUIDATION_CASCADE",
                   "fat_finger": "DATA_ERROR"}
    assert {r["route"] for r in out["results"]} == {"rules"}
    assert all(r["verdict"]["reasoning"].startswith("[rules]") for r in out["results"])


def test_configured_route_fails_over_and_the_ledger_adds_up(tmp_path, capsys, monkeypatch):
    with OpenAIServer([status(529, "Overloaded"), status(529, "Overloaded")],
                      default=ok(VERDICT, usage=(1_000, 200))) as server:
        cfg = tmp_path / "tw.toml"
        cfg.write_text(f"""
[data]
dir = "{tmp_path}"
[[llm.routes]]
name = "local"
provider = "openai-compatible"
model = "small"
base_url = "{server.base_url}"
retries = 1
backoff_base_s = 0.01
backoff_cap_s = 0.01
price = {{input = 3.0, output = 15.0}}
""")
        monkeypatch.delenv("TRIPWIRE_DATA__DIR", raising=False)
        assert main(["triage", "--demo", "--config", str(cfg), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
    routes = [r["route"] for r in out["results"]]
    # The first incident met two 529s (one retry), so the rules route answered it; the
    # others went through the loopback server with the real SDK.
    assert routes == ["rules", "local", "local"]
    assert out["results"][1]["verdict"]["classification"] == "NEWS_DRIVEN"
    assert out["results"][1]["cost_usd"] == pytest.approx((1_000 * 3.0 + 200 * 15.0) / 1e6)
    assert len(server.requests) == 4
    assert main(["llm", "costs", "--config", str(cfg), "--by", "route,outcome", "--json"]) == 0
    costs = {(r["route"], r["outcome"]): r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert costs[("local", "ok")]["calls"] == 2
    assert costs[("local", "ok")]["cost_usd"] == pytest.approx(2 * 0.006)
    assert costs[("local", "retry")]["calls"] == 1
    assert ("local", "failed:overloaded") in costs and costs[("rules", "ok")]["calls"] == 1


def test_a_bad_incident_file_or_broken_skill_exits_2_naming_it(tmp_path, capsys):
    assert main(["triage", "--incident", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    skills = tmp_path / "skills" / "triage-analyst"
    skills.mkdir(parents=True)
    (skills / "SKILL.md").write_text("# triage\n\n## Persona\nx\n")
    assert main(["triage", "--demo", "--skills", str(tmp_path / "skills")]) == 2
    assert "SKILL.md" in capsys.readouterr().err
