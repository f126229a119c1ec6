"""``tripwire config show`` and ``tripwire config schema`` (issue 15, item 6).

Run through the real ``tripwire`` entry point (``tripwire.cli.main``, which also loads the
runtime layers' commands, so ``[serve]`` is registered as it is for a user).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tripwire.cli import main


def run(capsys: Any, monkeypatch: Any, env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    for name in [n for n in __import__("os").environ if n.startswith("TRIPWIRE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "tw.toml"
    path.write_text(
        '[store]\nurl = "http://default:hunter2@db:8123/tripwire"\n'
        '[pipeline]\nshards = 3\n'
        '[serve]\nport = 8100\n'
        '[detector.returns]\nthreshold = 9.0\n'
        '[[llm.routes]]\nname = "gw"\nprovider = "openai-compatible"\nmodel = "m"\n'
        'base_url = "https://me:pa55w0rd@gw.example/v1"\nmetered = false\n'
        'options = { extra_header = "Bearer sk-abc" }\n'
    )
    return path


def test_show_gives_every_value_and_where_it_came_from(capsys, monkeypatch, cfg) -> None:
    code, out, _ = run(capsys, monkeypatch, {"TRIPWIRE_PIPELINE__SHARDS": "5",
                                             "TRIPWIRE_SERVE__HEARTBEAT_S": "2.5"},
                       "config", "show", "--config", str(cfg), "--json")
    assert code == 0
    shown = json.loads(out)
    s = shown["sections"]
    assert shown["file"] == str(cfg)
    assert set(s) >= {"data", "store", "ray", "pipeline", "time", "detector", "llm", "risk",
                      "signoff", "news", "watchdog", "telemetry", "serve"}
    assert s["pipeline"]["shards"] == {"value": 5, "source": "env",
                                       "from": "TRIPWIRE_PIPELINE__SHARDS"}
    assert s["pipeline"]["batch_rows"] == {"value": 50_000, "source": "default"}
    assert s["serve"]["port"] == {"value": 8100, "source": "file", "from": str(cfg)}
    assert s["serve"]["heartbeat_s"]["value"] == 2.5
    assert s["serve"]["heartbeat_s"]["source"] == "env"
    assert s["detector"]["returns.threshold"] == {"value": 9.0, "source": "file",
                                                  "from": str(cfg)}
    assert s["risk"]["mode"]["value"] == "DRY_RUN"
    assert s["llm"]["routes"]["source"] == "file"


def test_show_never_prints_a_secret(capsys, monkeypatch, cfg) -> None:
    env = {"TRIPWIRE_WATCHDOG__WEBHOOK_URL": "https://hook:t0psecret@alerts.example/x"}
    for argv in (("config", "show", "--config", str(cfg), "--json"),
                 ("config", "show", "--config", str(cfg))):
        code, out, err = run(capsys, monkeypatch, env, *argv)
        assert code == 0
        for secret in ("hunter2", "pa55w0rd", "t0psecret", "sk-abc"):
            assert secret not in out + err
    shown = json.loads(run(capsys, monkeypatch, env, "config", "show", "--config", str(cfg),
                           "--json")[1])["sections"]
    assert shown["store"]["url"]["value"] == "http://default:***@db:8123/tripwire"
    route = shown["llm"]["routes"]["value"][0]
    assert route["base_url"] == "https://me:***@gw.example/v1"


@pytest.mark.parametrize(("env", "message"), [
    ({"TRIPWIRE_PIPELINE__SHARDS": "0"},
     "pipeline.shards must be an integer >= 1, got 0 (from TRIPWIRE_PIPELINE__SHARDS)"),
    ({"TRIPWIRE_SERVE__PORT": "70000"},
     "serve.port must be an integer in [1, 65535], got 70000 (from TRIPWIRE_SERVE__PORT)"),
    ({"TRIPWIRE_WATCHDOG__MAX_DRAWDOWN": "1.5"},
     "watchdog.max_drawdown must be a number in (0, 1], got 1.5 "
     "(from TRIPWIRE_WATCHDOG__MAX_DRAWDOWN)"),
    ({"TRIPWIRE_SIGNOFF__APPROVAL_TTL_S": "-1"},
     "signoff.approval_ttl_s must be a number > 0, got -1 "
     "(from TRIPWIRE_SIGNOFF__APPROVAL_TTL_S)"),
    ({"TRIPWIRE_TIME__MAX_AGE_S": "true"},
     "time.max_age_s must be a number of seconds in (0, 315360000], got True "
     "(from TRIPWIRE_TIME__MAX_AGE_S)"),
    ({"TRIPWIRE_TELEMETRY__EXPORTER": "carrier-pigeon"},
     "telemetry.exporter must be one of otlp, console, off, memory, got 'carrier-pigeon' "
     "(from TRIPWIRE_TELEMETRY__EXPORTER)"),
    ({"TRIPWIRE_SERVE__NOPE": "1"},
     "serve.nope is not a known key of [serve] (known: clock, heartbeat_s, host"),
    ({"TRIPWIRE_DATA__DIR": "3"}, "data.dir must be a string, got 3 (from TRIPWIRE_DATA__DIR)"),
])
def test_a_bad_value_names_the_key_and_the_variable(capsys, monkeypatch, env,
                                                     message) -> None:
    code, out, err = run(capsys, monkeypatch, env, "config", "show")
    assert code == 2 and out == ""
    assert message in err


def test_a_bad_value_in_the_file_names_the_key(capsys, monkeypatch, tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[serve]\nclock = \"lunar\"\n")
    code, _, err = run(capsys, monkeypatch, {}, "config", "show", "--config", str(path))
    assert code == 2
    assert "serve.clock must be 'system' or 'market', got 'lunar'" in err


def test_schema_is_json_schema_of_every_section(capsys, monkeypatch, cfg) -> None:
    code, out, _ = run(capsys, monkeypatch, {}, "config", "schema", "--json")
    assert code == 0
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    assert set(props) >= {"pipeline", "serve", "watchdog", "llm", "detector", "risk", "time"}
    assert props["pipeline"]["properties"]["shards"]["minimum"] == 1
    assert props["serve"]["properties"]["port"]["maximum"] == 65_535
    assert props["pipeline"]["additionalProperties"] is False
    validator = jsonschema.Draft202012Validator(schema)
    import tomllib
    assert list(validator.iter_errors(tomllib.loads(cfg.read_text()))) == []
    assert list(validator.iter_errors({})) == []
    bad = list(validator.iter_errors({"pipeline": {"shards": 0}, "serve": {"nope": 1}}))
    assert len(bad) == 2
