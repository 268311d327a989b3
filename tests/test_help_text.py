"""The `--help` that `convaudit/__main__.py` serves without Typer is Typer's own, current, and used only where
Rich would draw exactly it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from convaudit import __version__, help_text
from convaudit.__main__ import help_key

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import help_text as script  # noqa: E402


def project_part(key: str) -> list[str]:
    """The parts of the key that name our own files; the rest names the installed Typer and Rich."""
    return [part for part in key.split() if not part.startswith(("typer/", "rich/"))]


def test_saved_help_is_current() -> None:
    assert project_part(help_text.KEY) == project_part(help_key()), (
        "convaudit/help_text.py is stale: run python scripts/help_text.py --write")


@pytest.mark.parametrize("program", sorted(script.PROGRAMS))
def test_fast_help_is_typers(program: str) -> None:
    drawn = script.drawn_help(program)  # Typer and Rich, the fast path switched off
    if help_text.KEY == help_key():  # the Typer and Rich the copy was made with: it must be theirs, verbatim
        assert drawn == help_text.HELP[program]
    # with another Typer or Rich installed the key differs and the CLI draws the help itself: same text either way
    assert script.drawn_help(program, fast=True) == drawn
    assert f"Usage: {program} [OPTIONS] COMMAND" in drawn


def test_fast_path_steps_aside_for_the_terminal_width() -> None:
    """COLUMNS changes Rich's width: the CLI draws the help itself, at that width."""
    env = script.quiet_environment(COLUMNS="100")
    result = subprocess.run([sys.executable, "-m", "convaudit", "--help"], stdin=subprocess.DEVNULL,
                            capture_output=True, env=env, cwd=ROOT, check=True)
    lines = result.stdout.decode().splitlines()
    assert max(len(line) for line in lines) == 100


def test_version_fast_and_slow() -> None:
    for extra in ({}, {"CONVAUDIT_NO_FAST_HELP": "1", "COLUMNS": "90"}):
        result = subprocess.run([sys.executable, "-m", "convaudit", "--version"], stdin=subprocess.DEVNULL,
                                capture_output=True, env=script.quiet_environment(**extra), cwd=ROOT, check=True)
        assert result.stdout.decode() == f"convaudit {__version__}\n"
