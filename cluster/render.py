"""Fill ``${NAME}`` placeholders in a cluster template from the environment.

The Ray cluster launcher reads its YAML as is; it does not expand environment variables.
This renders ``cluster/ray-cluster.yaml`` into a file ``ray up`` can use::

    python cluster/render.py cluster/ray-cluster.yaml -o cluster/ray-cluster.rendered.yaml

Rules (kept small on purpose, so the output is predictable):

- only ``${UPPER_CASE}`` is replaced; ``$NAME`` without braces (``$RAY_HEAD_IP``, ``$HOME``)
  is left for the shell on the nodes;
- full-line comments are copied unchanged (they may mention placeholders);
- a placeholder whose variable is missing or empty is refused, naming every such variable,
  and nothing is written (exit code 2);
- ``~`` at the start of a value (``TRIPWIRE_SSH_KEY=~/.ssh/key``) is kept: the launcher
  expands it locally.

Only the standard library: it runs before the project's environment exists.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
# Variables with a closed set of values: a typo ("tokne") must not start an open cluster.
CHOICES: dict[str, tuple[str, ...]] = {"RAY_AUTH_MODE": ("token", "disabled")}
MAX_TEMPLATE_BYTES = 1_000_000  # a cluster config is a few KB; anything larger is a mistake


class MissingVariables(ValueError):
    """Placeholders whose environment variables are not set."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            "cannot render: environment variable(s) not set: " + ", ".join(names)
            + " (export them, see cluster/README.md)")


def placeholders(text: str) -> list[str]:
    """The variables a template needs, in order of first use (comments ignored)."""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            seen.update(dict.fromkeys(PLACEHOLDER.findall(line)))
    return list(seen)


def render(text: str, env: Mapping[str, str]) -> str:
    """``text`` with every placeholder filled from ``env``; refuses if any is missing."""
    missing = [n for n in placeholders(text) if not env.get(n, "").strip()]
    if missing:
        raise MissingVariables(missing)
    out = []
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("#"):
            out.append(line)
        else:
            # A value with YAML-significant characters would change the document's shape.
            out.append(PLACEHOLDER.sub(lambda m: _checked(m.group(1), env[m.group(1)]), line))
    return "".join(out)


def _checked(name: str, value: str) -> str:
    value = value.strip()
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"{name} must be one of {', '.join(CHOICES[name])}, got {value!r}")
    if any(c in value for c in "\n\r#{}[]&*!|>'\"%@`,") or value.startswith(("-", "?", ":")):
        raise ValueError(f"{name}={value!r} contains characters that are not safe in the "
                         "cluster YAML; use a plain path or name")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("template", type=Path, help="e.g. cluster/ray-cluster.yaml")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="where to write the rendered YAML (refuses to overwrite the template)")
    args = p.parse_args(argv)
    try:
        if args.output.resolve() == args.template.resolve():
            raise ValueError("the output must not be the template itself")
        if args.template.stat().st_size > MAX_TEMPLATE_BYTES:
            raise ValueError(f"{args.template} is larger than {MAX_TEMPLATE_BYTES} bytes")
        template = args.template.read_text()
        text = render(template, os.environ)
    except (OSError, ValueError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    args.output.write_text(text)
    print(f"render: wrote {args.output} ({len(placeholders(template))} variables filled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
