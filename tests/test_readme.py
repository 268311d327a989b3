"""The README shows real output, and .ci/run runs the README's own test command."""

from __future__ import annotations

import importlib.util
import re

import pytest

from .conftest import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("readme_outputs", ROOT / "scripts" / "readme_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_outputs_are_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    script = load_script()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert script.BLOCK.search(text), "README has no output blocks"
    assert script.stale_blocks(text) == [], "run: python scripts/readme_outputs.py --write"


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)\n```", text, re.S)
    assert block and text.index(block.group(0)) < 40, "README must open with the set-up commands"
    return block.group(1).splitlines()


def test_readme_opens_with_exactly_two_setup_commands() -> None:
    install_and_run, install_and_test = setup_commands()
    assert "convaudit summary architectures/alexnet.yaml" in install_and_run
    assert install_and_test.endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert setup_commands()[1] in ci.splitlines()
