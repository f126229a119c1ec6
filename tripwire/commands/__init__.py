"""The ``tripwire`` command: one registry for every user-facing action.

Exit codes: 0 success, 1 the command ran and found a failure, 2 bad usage or input.

Where commands are registered (one place per layer):

- the domain's own commands are the modules of this package named in :data:`GROUPS`, one
  module per command group, each with ``register(subparsers)``. To add a domain command,
  add a module here with a ``register`` function and append its name to :data:`GROUPS`;
- the runtime layers register theirs from ONE module each, ``actors/commands.py`` and
  ``serve_apps/commands.py``, through the ``tripwire.commands`` entry-point group in
  pyproject.toml, so this package never imports Ray, Serve or LangGraph: the dependency
  points inward. A runtime command is added to that layer's ``commands.py``.

A command module only parses arguments and calls the code that does the work. Shared pieces
(``--config``, ``--json``, the one :class:`~tripwire.commands.common.UsageError`) are in
:mod:`tripwire.commands.common`; :func:`main` maps a UsageError to exit 2 with
``tripwire <command>: <argument>: <message>`` on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from tripwire.commands.common import EXIT_USAGE, UsageError

#: The domain's command modules, in the order ``tripwire --help`` lists them.
GROUPS: tuple[str, ...] = ("detect", "llm", "db", "watchdog", "slurm", "config", "review")

#: The entry-point group the runtime layers register through (see pyproject.toml).
ENTRY_POINT_GROUP = "tripwire.commands"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tripwire", description="Tripwire: every action is one subcommand. Exit codes: "
        "0 done, 1 the command ran and found a failure, 2 bad usage or input.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in GROUPS:
        importlib.import_module(f"tripwire.commands.{name}").register(sub)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register = ep.load()
        except ImportError as exc:  # a runtime layer that cannot load must not break the rest
            print(f"tripwire: commands from {ep.value} unavailable: {exc}", file=sys.stderr)
            continue
        register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:  # the one usage error of every layer: exit 2, naming the argument
        print(f"tripwire {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def entry() -> None:
    """The console script."""
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. `tripwire detect-demo --json | head`
        sys.stderr.close()
        sys.exit(0)


__all__ = ["ENTRY_POINT_GROUP", "GROUPS", "UsageError", "build_parser", "entry", "main"]
