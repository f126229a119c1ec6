"""What every ``tripwire`` command shares: the usage error, ``--config`` and ``--json``.

A bad argument is a :class:`UsageError` raised by the command (or an
``argparse.ArgumentTypeError`` from :mod:`tripwire.argtypes`); the registry
(:func:`tripwire.commands.main`) turns it into exit code 2 and one line on stderr,
``tripwire <command>: <argument>: <what was wrong>``, so the message always names the argument.

>>> str(UsageError("must be >= 0, got -1", argument="--speed"))
'--speed: must be >= 0, got -1'
>>> str(UsageError("--source binance needs --streams"))
'--source binance needs --streams'
"""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad input from the command line: exit code 2 with a message that names the argument.

    ``argument`` (e.g. ``"--speed"``) is put in front of the message; leave it out only when
    the message already starts with the argument's name.
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}" if argument else message)


def add_config(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """The shared ``--config FILE`` option (settings TOML; default ``$TRIPWIRE_CONFIG``)."""
    p.add_argument("--config", metavar="FILE",
                   help=help or "TOML settings file (default: $TRIPWIRE_CONFIG)")


def add_json(p: argparse.ArgumentParser, help: str = "print one JSON object") -> None:
    """The shared ``--json`` flag: machine-readable output on stdout, nothing else there."""
    p.add_argument("--json", action="store_true", help=help)


def lazy(module: str, name: str):
    """A command function imported only when its command runs.

    ``tripwire --help`` and every other command then never import a runtime it does not use
    (Ray, Serve, LangGraph load only for the commands that need them).
    """

    def run(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), name)(args)

    run.__qualname__ = f"lazy({module}.{name})"
    return run
