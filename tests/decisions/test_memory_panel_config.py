"""[memory] and [panel] in the one settings file: defaults off, validated by key, shown by
``tripwire config show`` and described by ``tripwire config schema``."""

from __future__ import annotations

import json

import pytest

from tripwire.commands import main
from tripwire.config import load_settings
from tripwire.decisions.panel import PANEL_ROLES


def test_memory_and_panel_are_off_by_default(monkeypatch):
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)
    d = load_settings(None, env={}).decisions
    assert d.memory.enabled is False and d.panel.enabled is False
    assert d.panel.members == PANEL_ROLES and d.panel.threshold == 2


def test_a_file_and_the_environment_turn_them_on(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text('[memory]\nenabled = true\nmax_items = 3\n'
                 '[panel]\nmembers = ["news-analyst", "order-flow-analyst"]\nthreshold = 2\n')
    d = load_settings(f, env={"TRIPWIRE_PANEL__ENABLED": "true"}).decisions
    assert (d.memory.enabled, d.memory.max_items) == (True, 3)
    assert d.panel.enabled and d.panel.members == ("news-analyst", "order-flow-analyst")


@pytest.mark.parametrize("text,needle", [
    ("[memory]\nmax_items = 0\n", "memory.max_items"),
    ("[memory]\nwindow = 3\n", "memory.window is not a known key"),
    ('[panel]\nmembers = ["oracle"]\n', "panel.members: 'oracle' is not a panel role"),
    ("[panel]\nthreshold = 4\n", "panel.threshold must be an integer in [1, 3]"),
])
def test_bad_values_name_the_key(tmp_path, text, needle):
    f = tmp_path / "t.toml"
    f.write_text(text)
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_settings(f, env={})


def test_config_show_and_schema_know_both_sections(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRIPWIRE_CONFIG", raising=False)
    f = tmp_path / "t.toml"
    f.write_text("[memory]\nenabled = true\n")
    assert main(["config", "show", "--config", str(f), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["sections"]
    assert shown["memory"]["enabled"] == {"value": True, "source": "file", "from": str(f)}
    assert shown["panel"]["threshold"]["value"] == 2
    assert main(["config", "schema", "--json"]) == 0
    props = json.loads(capsys.readouterr().out)["properties"]
    assert set(props["memory"]["properties"]) == {"enabled", "max_items", "max_chars",
                                                  "horizon_s"}
    assert set(props["panel"]["properties"]) == {"enabled", "members", "threshold"}
