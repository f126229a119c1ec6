"""The one `tripwire` command: every user-facing action is a subcommand, registered from one
place per layer, and a bad argument exits 2 with a message naming it."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from tripwire.commands import GROUPS, build_parser, main
from tripwire.commands.common import UsageError

# Issue 14's list, plus the commands that were already there.
EVERY_COMMAND = (
    "demo", "ingest", "backtest", "sweep", "live", "report", "decide", "triage", "explain",
    "watchdog", "halt", "resume", "db", "llm", "slurm", "detect-eval",
    "detect-demo", "config", "calibrate", "status",
)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_help_lists_every_subcommand():
    r = subprocess.run([sys.executable, "-m", "tripwire.cli", "--help"],
                       capture_output=True, text=True, check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "unavailable" not in r.stderr  # every layer's registry loaded
    listed = {line.split()[0] for line in r.stdout.splitlines() if line.startswith("    ")}
    assert set(EVERY_COMMAND) <= listed, set(EVERY_COMMAND) - listed


def test_each_layer_registers_from_one_module():
    from importlib.metadata import entry_points

    eps = {ep.value for ep in entry_points(group="tripwire.commands")}
    assert eps == {"actors.commands:register", "serve_apps.commands:register"}
    assert {"detect", "llm", "db", "watchdog", "slurm", "config"} <= set(GROUPS)
    from pathlib import Path

    import tripwire.commands as package

    here = Path(package.__file__).parent
    assert all((here / f"{name}.py").is_file() for name in GROUPS)  # one module per group


def test_help_does_not_import_the_runtime():
    """Parsing never loads Ray or LangGraph: the runtime is imported by the command that runs."""
    code = ("import sys; from tripwire.commands import build_parser; build_parser(); "
            "print(sorted(m for m in ('ray', 'langgraph', 'graphs.signoff') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, timeout=60)
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize(("argv", "named"), [
    (["ingest", "--shards", "0"], "--shards"),
    (["backtest", "--groups", "0"], "--groups"),
    (["sweep", "--top", "x"], "--top"),
    (["report", "--since", "yesterday"], "--since"),
    (["detect-demo", "--symbols", "0"], "--symbols"),
    (["calibrate", "--source", "nowhere"], "--source"),
    (["triage"], "--demo"),  # one of --demo / --incident is required
])
def test_a_bad_argument_exits_2_naming_it(argv, named, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert named in err, err


def test_a_usage_error_from_a_command_exits_2_naming_the_argument(capsys, monkeypatch):
    from tripwire import commands

    parser = build_parser()
    args = parser.parse_args(["config", "show"])

    def refuses(_args):
        raise UsageError("must be >= 0, got -1", argument="--speed")

    args.func = refuses
    monkeypatch.setattr(commands, "build_parser", lambda: _Fixed(parser, args))
    assert commands.main(["config", "show"]) == 2
    assert capsys.readouterr().err.strip() == "tripwire config: --speed: must be >= 0, got -1"


class _Fixed:
    def __init__(self, parser, args):
        self.parser, self.args = parser, args

    def parse_args(self, argv):
        return self.args


def test_a_runtime_usage_error_exits_2_through_the_one_class(capsys, tmp_path):
    """`live --speed -1` raises the shared UsageError deep in the job; exit 2, named."""
    cfg = tmp_path / "t.toml"
    cfg.write_text("")
    assert main(["live", "--speed", "-1", "--config", str(cfg)]) == 2
    assert "--speed" in capsys.readouterr().err


def test_there_is_one_usage_error_class():
    """Every layer raises tripwire.commands.common.UsageError; no command module defines its
    own (there were three: actors' UsageError, the backtest job's BadArgument, the
    watchdog's _Usage)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    own = re.compile(r"^class \w*(Usage|BadArgument)\w*\(", re.MULTILINE)
    found = [str(p.relative_to(root)) for layer in ("tripwire", "actors", "serve_apps", "graphs")
             for p in (root / layer).rglob("*.py") if own.search(p.read_text())]
    assert found == ["tripwire/commands/common.py"], found
