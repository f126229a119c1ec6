"""``python -m tripwire.commands``: the same as the ``tripwire`` console script."""

from tripwire.commands import entry

entry()
