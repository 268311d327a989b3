"""The Python API as a user calls it: convaudit.summary(...) on a name, a file, a target or an nn.Module."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.console import Console
from typer.testing import CliRunner

import convaudit
from convaudit.cli import app
from convaudit.errors import ConvauditError

from .conftest import ROOT


def cli_totals(*args: str) -> dict:
    result = CliRunner().invoke(app, ["summary", *args, "--format", "json"], env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["totals"]


def test_import_convaudit_is_light() -> None:
    code = ("import sys, convaudit; "
            "assert 'torch' not in sys.modules and 'convaudit.core.analysis' not in sys.modules; "
            "print(sorted(convaudit.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['Summary', 'summary']"


def test_summary_of_a_bundled_name_equals_the_cli() -> None:
    s = convaudit.summary("alexnet")
    totals = cli_totals("alexnet")
    assert s.totals.params == totals["params"] == 60_965_224
    assert s.totals.macs == totals["macs"]
    assert s.layers[0].name == "conv1" and s.layers[0].output_shape == (96, 55, 55)
    assert s.memory.training_total > s.memory.params > 0
    assert s.findings == ()  # AlexNet at its own 227: nothing to report


def test_input_size_overrides_a_spec() -> None:
    s = convaudit.summary("alexnet", input_size=(3, 224, 224))
    assert s.spec.input == (3, 224, 224)
    assert any(f.kind == "inexact-division" for f in s.findings)  # (224 − 11)/4 + 1 = 54.25
    assert convaudit.summary("alexnet", input_size=224).spec.input == (3, 224, 224)


def test_summary_renders_as_the_cli_table() -> None:
    s = convaudit.summary("lenet5")
    console = Console(width=140, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(s)
    text = console.export_text()
    assert "Total" in text and "lenet5" in text
    assert "<html" in s._repr_html_().lower()
    assert "lenet5" in repr(s)


def test_bad_arguments_are_convaudit_errors() -> None:
    with pytest.raises(ConvauditError, match="input_size"):
        convaudit.summary("alexnet", input_size=(3, 0, 224))
    with pytest.raises(ConvauditError, match="not int"):
        convaudit.summary(42)
    with pytest.raises(ConvauditError, match="channels"):
        convaudit.summary("alexnet", input_size=(1, 227, 227))


@pytest.mark.needs_torch
def test_summary_of_a_module_equals_the_cli_on_the_same_model() -> None:
    from convaudit.importers.targets import load_torchvision

    torchvision = load_torchvision()
    s = convaudit.summary(torchvision.models.resnet18(), input_size=(3, 224, 224))
    totals = cli_totals("torchvision:resnet18")
    assert (s.totals.params, s.totals.macs, s.totals.flops) == (totals["params"], totals["macs"], totals["flops"])
    assert s.totals.params == 11_689_512  # torchvision's documented num_params for resnet18
    assert s.layer("layer4.1.conv2").output_shape == (512, 7, 7)


def test_summary_saves_the_same_report_the_cli_writes(tmp_path) -> None:
    s = convaudit.summary("alexnet")
    ours = tmp_path / "api.html"
    s.save_report(str(ours))
    cli = tmp_path / "cli.html"
    result = CliRunner().invoke(app, ["report", "alexnet", "-o", str(cli)])
    assert result.exit_code == 0, result.output
    assert ours.read_text(encoding="utf-8") == cli.read_text(encoding="utf-8")


def test_import_convaudit_then_torchvision_as_a_user_writes_it() -> None:
    """The issue's line, verbatim, in a fresh interpreter: torchvision imported by the user, next to CPU torch."""
    code = ("import sys, convaudit; assert 'torch' not in sys.modules; import torchvision; "
            "s = convaudit.summary(torchvision.models.resnet18(), input_size=(3, 224, 224)); "
            "print(s.totals.params, s.totals.macs)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    params, macs = map(int, done.stdout.split())
    totals = cli_totals("torchvision:resnet18")
    assert (params, macs) == (totals["params"], totals["macs"]) == (11_689_512, totals["macs"])
