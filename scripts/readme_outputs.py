"""Refresh or check the command outputs shown in README.md.

Each block is marked by a comment naming the command's arguments:

    <!-- convaudit: summary architectures/alexnet.yaml -->   (or "convaudit (timed):" for output with timings)
    ```text
    …output…
    ```

Usage: python scripts/readme_outputs.py [--write]   (without --write: exit 1 if any block is stale)
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
WIDTH = "120"
# "convaudit (timed):" marks output with timings: refreshed by --write, not compared.
BLOCK = re.compile(r"(<!-- convaudit(?P<timed> \(timed\))?: (?P<args>.*?) -->\n```text\n)(?P<body>.*?)(\n```)", re.S)


def command_output(args: str) -> str:
    from convaudit.cli import app

    result = CliRunner().invoke(app, shlex.split(args), env={"COLUMNS": WIDTH})
    lines = [line.rstrip() for line in result.stdout.rstrip().splitlines()]
    return "\n".join(lines)


def refreshed(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + command_output(m.group("args")) + m.group(5), text)


def stale_blocks(text: str) -> list[str]:
    return [m.group("args") for m in BLOCK.finditer(text)
            if not m.group("timed") and m.group("body") != command_output(m.group("args"))]


def main() -> int:
    import os

    os.chdir(ROOT)  # paths in the output are shown relative to the repository
    text = README.read_text(encoding="utf-8")
    if "--write" in sys.argv:
        README.write_text(refreshed(text), encoding="utf-8")
        return 0
    stale = stale_blocks(text)
    for args in stale:
        print(f"stale README output: convaudit {args}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
