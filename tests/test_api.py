"""The Python API as a user calls it: convaudit.summary(...) on a name, a file, a target or an nn.Module, what it
prints, and every misuse as a ConvauditError."""

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


def cli(*args: str, width: str | None = "140") -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": width})
    assert result.exit_code == 0, result.output
    return result.stdout


def cli_totals(*args: str) -> dict:
    return json.loads(cli("summary", *args, "--format", "json"))["totals"]


def test_import_convaudit_is_light_and_changes_nothing() -> None:
    code = ("import sys; hooks, path = list(sys.meta_path), list(sys.path); import convaudit; "
            "assert sys.meta_path == hooks and sys.path == path, 'import convaudit changed sys.meta_path or sys.path'; "
            "assert 'torch' not in sys.modules and 'convaudit.core.analysis' not in sys.modules; "
            "print(sorted(convaudit.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['ConvauditError', 'Summary', 'SummaryTable', 'prepare_torchvision', 'summary']"
    assert convaudit.ConvauditError is ConvauditError


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


# ------------------------------------------------------------------ what it prints

def test_print_shows_the_table_the_cli_prints_to_a_pipe() -> None:
    s = convaudit.summary("alexnet", input_size=224)
    piped = cli("summary", "alexnet", "--input", "224", width=None)  # no COLUMNS, no terminal: a pipe
    assert str(s) + "\n" == piped  # print(s) writes exactly what the CLI writes
    assert str(s.table()) == str(s)
    resnet = convaudit.summary("resnet18")
    assert str(resnet.table(depth=1)) + "\n" == cli("summary", "resnet18", "--depth", "1", width=None)
    # 23 layers: conv1–5 and their ReLUs (10), lrn1, pool1, lrn2, pool2, pool5 (5), fc6–fc8 with relu6, relu7,
    # dropout1, dropout2 (7), softmax; params: 227's 60,965,224 less fc6's 4096 · (9216 − 256·5·5) weights
    assert repr(s) == (f"<convaudit.Summary alexnet at 3×224×224: 23 layers, params "
                       f"{60_965_224 - 4096 * (9216 - 256 * 5 * 5):,}, MACs {s.totals.macs:,}>")
    assert repr(s.table()).startswith("<convaudit.SummaryTable: alexnet — AlexNet") and "\n" not in repr(s.table())


def test_the_table_is_still_a_rich_renderable() -> None:
    s = convaudit.summary("lenet5")
    for shown in (s, s.table()):
        console = Console(width=140, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(shown)
        text = console.export_text()
        assert "Total" in text and "lenet5" in text and "rich.console.Group" not in text
    assert "<html" in s._repr_html_().lower() and "C1" in s.table()._repr_html_()


def test_records_print_as_one_short_line() -> None:
    s = convaudit.summary("alexnet", input_size=224)
    # conv1 at 224: floor((224 − 11)/4) + 1 = 54; params 96·3·11·11 + 96; MACs 96·54·54 · 3·11·11
    assert repr(s.layers[0]) == ("LayerResult(name='conv1', type='conv', output_shape=(96, 54, 54), "
                                 f"params={96 * 3 * 11 * 11 + 96}, macs={96 * 54 * 54 * 3 * 11 * 11})")
    assert repr(s.layer("conv1")) == repr(s.layers[0])
    assert repr(s.totals).startswith(f"Totals(params={s.totals.params}, ")
    assert repr(s.memory).startswith("Memory(dtype='fp32', batch=1, optimizer='adam', training_total=")
    finding = s.findings[0]
    assert repr(finding).startswith("Finding(severity='warning', kind='inexact-division', layer='conv1', ")
    for record in (s.layers[0], s.totals, s.memory, finding):
        assert "\n" not in repr(record) and len(repr(record)) < 400, repr(record)
    assert s.layers[0].spec.params["kernel"] == (11,)  # still the full record underneath (11: every axis)


# ------------------------------------------------------------------ every misuse is a ConvauditError

class Index:
    """An int-like value that is not an int (as numpy.int64 is)."""

    def __init__(self, value: int):
        self.value = value

    def __index__(self) -> int:
        return self.value


class LooksLikeAModule:
    def named_parameters(self) -> list:
        return []

    def forward(self, x: object) -> object:
        return x


@pytest.mark.parametrize(("arguments", "needle"), [
    ({"input_size": (3, 0, 224)}, "input_size: expected at least 1, got 0"),
    ({"input_size": 3.5}, "input_size: expected a whole number, got float 3.5"),
    ({"input_size": (224.0, 224)}, "input_size: expected a whole number"),
    ({"input_size": True}, "input_size: expected a whole number, got True"),
    ({"input_size": "224"}, "input_size: expected a whole number, got str"),
    ({"input_size": (1, 2, 3, 4)}, "input_size: expected (C, H, W), (H, W) or H, got 4 values"),
    ({"input_size": 10**30}, "input_size: refused: larger than 2^63"),
    ({"input_size": (3, 224, 2**63 + 1)}, "input_size: refused: larger than 2^63"),
    ({"input_size": (1, 227, 227)}, "alexnet takes 3 channels, not 1"),
    ({"batch": 2.5}, "batch: expected a whole number, got float 2.5"),
    ({"batch": 0}, "batch: expected at least 1, got 0"),
    ({"batch": 10**30}, "batch: refused: larger than 2^63"),
    ({"dtype": "fp64"}, "dtype: expected one of fp32, fp16, bf16"),
    ({"dtype": ["fp32"]}, "dtype: expected one of fp32, fp16, bf16"),
])
def test_bad_arguments_are_convaudit_errors(arguments: dict, needle: str) -> None:
    with pytest.raises(ConvauditError) as raised:
        convaudit.summary("alexnet", **arguments)
    assert needle in str(raised.value)


@pytest.mark.parametrize("model", [42, None, LooksLikeAModule(), object(), b"alexnet"])
def test_what_is_not_a_network_is_refused(model: object) -> None:
    with pytest.raises(ConvauditError, match=f"not {type(model).__name__}"):
        convaudit.summary(model)


def test_int_likes_are_whole_numbers() -> None:
    s = convaudit.summary("alexnet", input_size=(Index(3), Index(227), Index(227)), batch=Index(2))
    assert s.spec.input == (3, 227, 227) and s.report.batch == 2
    assert isinstance(s.totals.macs, int) and s.totals.macs == 2 * convaudit.summary("alexnet").totals.macs
    numpy = pytest.importorskip("numpy")
    s = convaudit.summary("alexnet", input_size=numpy.int64(224), batch=numpy.int32(2))
    assert s.spec.input == (3, 224, 224) and type(s.report.batch) is int


def test_unknown_layer_names_and_specs_are_convaudit_errors(tmp_path) -> None:
    s = convaudit.summary("lenet5")
    with pytest.raises(ConvauditError, match="lenet5 has no layer named 'nope'"):
        s.layer("nope")
    with pytest.raises(ConvauditError, match="neither a file nor a bundled architecture"):
        convaudit.summary("alexnt")
    with pytest.raises(ConvauditError, match="Is a directory"):
        s.save_report(str(tmp_path))


# ------------------------------------------------------------------ torch

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
    cli_file = tmp_path / "cli.html"
    result = CliRunner().invoke(app, ["report", "alexnet", "-o", str(cli_file)])
    assert result.exit_code == 0, result.output
    assert ours.read_text(encoding="utf-8") == cli_file.read_text(encoding="utf-8")


@pytest.mark.needs_torch
def test_torchvision_after_prepare_torchvision_as_the_readme_writes_it() -> None:
    """The README's lines, verbatim, in a fresh interpreter: PyPI's torchvision next to CPU torch needs
    convaudit.prepare_torchvision() before `import torchvision`; nothing happens at `import convaudit`."""
    code = ("import sys, convaudit; hooks = list(sys.meta_path); assert 'torch' not in sys.modules\n"
            "convaudit.prepare_torchvision()\n"
            "import torchvision\n"
            "assert sys.meta_path == hooks\n"
            "s = convaudit.summary(torchvision.models.resnet18(), input_size=(3, 224, 224))\n"
            "print(s.totals.params, s.totals.macs)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    params, macs = map(int, done.stdout.split())
    totals = cli_totals("torchvision:resnet18")
    assert (params, macs) == (totals["params"], totals["macs"]) == (11_689_512, totals["macs"])
