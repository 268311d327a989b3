"""The command line through Typer's CliRunner at a fixed width: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app

from .conftest import ROOT

WIDTH = {"COLUMNS": "140"}


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDTH)


def assert_one_line_error(result, code: int = 2, needle: str = "") -> str:
    assert result.exit_code == code, result.output
    message = result.stderr.strip()
    assert message.startswith("error: "), message
    assert "\n" not in message and "Traceback" not in result.output
    assert needle in message, message
    assert result.stdout == ""  # nothing half-written
    return message


# ------------------------------------------------------------------ summary

def test_summary_table_shows_totals_and_conventions() -> None:
    result = run("summary", "alexnet")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "conv1" in out and "96×55×55" in out and "34,944" in out
    assert "60,965,224" in out  # params total in the footer
    assert "FLOPs = 2 × MACs" in out
    assert "floor((W − K + 2P)/S) + 1" in out


def test_summary_marks_inexact_layers_in_the_table() -> None:
    result = run("summary", "alexnet", "--input", "224")
    # Every layer can still be computed (fc6 just receives 6400), so the table shows the marks.
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("conv1"))
    assert "96×54×54 ⚠ 54.25" in row
    assert "⚠ marks a division that is not exact" in result.stdout


def test_summary_json_contract() -> None:
    result = run("summary", "lenet5", "--format", "json", "--batch", "2", "--dtype", "fp16")
    data = json.loads(result.stdout)
    assert {"name", "input", "batch", "conventions", "layers", "totals"} <= set(data)
    assert data["input"] == [1, 32, 32] and data["batch"] == 2
    layer = data["layers"][0]
    for key in ("name", "type", "input_shape", "output_shape", "params", "weights", "biases", "macs", "flops",
                "other_ops", "activations", "exact"):
        assert key in layer
    for key in ("params", "trainable_params", "non_trainable_params", "macs", "flops", "other_ops",
                "activations", "param_bytes", "activation_bytes"):
        assert key in data["totals"]
        if key not in ("param_bytes", "activation_bytes"):
            assert data["totals"][key] == sum(row.get(key, 0) for row in data["layers"]), key
    assert data["totals"]["param_bytes"] == 2 * data["totals"]["params"]  # fp16


def test_summary_csv_and_markdown() -> None:
    csv_text = run("summary", "vgg16", "--format", "csv").stdout
    rows = [line.split(",") for line in csv_text.strip().splitlines()]
    header, body, total = rows[0], rows[1:-1], rows[-1]
    macs = header.index("macs")
    assert sum(int(r[macs]) for r in body) == int(total[macs])
    md = run("summary", "vgg16", "--format", "markdown").stdout
    assert md.startswith("### vgg-d") and "| conv1_1 | conv |" in md


def test_summary_columns_option() -> None:
    result = run("summary", "lenet5", "--columns", "layer,other_ops")
    header = next(line for line in result.stdout.splitlines() if line.strip().startswith("Layer"))
    assert result.exit_code == 0 and header.split() == ["Layer", "Other", "ops"]
    assert_one_line_error(run("summary", "lenet5", "--columns", "layer,bogus"), needle="unknown column 'bogus'")


def test_bundled_names_resolve_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("summary", "vgg16")
    assert result.exit_code == 0 and "vgg-d" in result.stdout


def test_paths_work(tmp_path: Path) -> None:
    result = run("summary", str(ROOT / "architectures" / "alexnet.yaml"))
    assert result.exit_code == 0 and "alexnet" in result.stdout


# ------------------------------------------------------------------ check

def test_check_all_bundled_is_clean() -> None:
    result = run("check")
    assert result.exit_code == 0, result.output
    for name in ("alexnet", "vgg-d", "lenet5"):
        assert f"✓ {name} at" in result.stdout


def test_check_alexnet_224() -> None:
    result = run("check", "alexnet", "--input", "224")
    assert result.exit_code == 1
    assert "(224 − 11 + 2·0)/4 + 1 = 54.25" in result.stdout
    assert "fc6 pins in: 9216 but receives 256×5×5 = 6400" in result.stdout
    assert "227×227" in result.stdout


def test_check_input_224_over_all_bundled() -> None:
    result = run("check", "--input", "224", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    flagged = {(f["spec"], f["layer"], f["kind"]) for f in data["findings"]}
    assert ("alexnet", "conv1", "inexact-division") in flagged
    assert ("alexnet", "fc6", "in-mismatch") in flagged
    finding = data["findings"][0]
    assert set(finding) >= {"spec", "layer", "severity", "kind", "message", "suggestions"}


def test_check_strict_and_markdown() -> None:
    assert run("check", "resnet18", "--strict").exit_code == 0  # information only: its shortcut loses nothing more
    # DenseNet at 225: transition1's pool floors (57 − 2)/2 + 1 = 28.5, leaving a row unread: a warning.
    assert run("check", "densenet121", "--input", "225").exit_code == 0
    assert run("check", "densenet121", "--input", "225", "--strict").exit_code == 1
    md = run("check", "alexnet", "--input", "224", "--format", "markdown").stdout
    assert md.startswith("- **alexnet** at 3×224×224")


# ------------------------------------------------------------------ list, schema, version

def test_list() -> None:
    result = run("list", "--format", "json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"alexnet", "alexnet-torchvision", "lenet5", "vgg-a", "vgg-a-lrn", "vgg-b", "vgg-c", "vgg-d",
            "vgg-e"} <= set(rows)
    assert "vgg16" in rows["vgg-d"]["aliases"]
    assert "AlexNet" in run("list").stdout


def test_schema_and_version() -> None:
    assert json.loads(run("schema").stdout)["title"] == "convaudit network spec"
    assert run("--version").stdout.startswith("convaudit ")


# ------------------------------------------------------------------ bad input: one line, exit 2

def test_missing_file() -> None:
    assert_one_line_error(run("summary", "nope/absent.yaml"), needle="no such file: nope/absent.yaml")


def test_unknown_architecture_suggests() -> None:
    assert_one_line_error(run("summary", "alexnt"), needle="(did you mean 'alexnet'?)")


def test_malformed_yaml(write_spec) -> None:
    path = write_spec("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: relu\n")
    message = assert_one_line_error(run("summary", str(path)), needle="YAML syntax error")
    assert f"{path}:" in message


def test_unknown_layer_type(write_spec) -> None:
    path = write_spec("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: convolution, out: 4, kernel: 3}\n")
    assert_one_line_error(run("check", str(path)), needle=f"{path}:4: layers[0].type: unknown layer type "
                                                          "'convolution' (did you mean")


def test_zero_and_negative_sizes(write_spec) -> None:
    path = write_spec("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 4, kernel: -3}\n")
    assert_one_line_error(run("summary", str(path)), needle="layers[0].kernel: expected a positive integer")
    assert_one_line_error(run("summary", "alexnet", "--input", "0"), needle="--input: sizes must be positive")
    assert_one_line_error(run("summary", "alexnet", "--input", "big"), needle="--input: expected N, HxW or DxHxW")
    assert_one_line_error(run("summary", "alexnet", "--batch", "0"), needle="--batch")


def test_kernel_larger_than_input(write_spec) -> None:
    path = write_spec("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 4, kernel: 11}\n")
    assert_one_line_error(run("summary", str(path)), needle="larger than the padded input")
    result = run("check", str(path))
    assert result.exit_code == 1 and "larger than the padded input" in result.stdout


def test_groups_that_do_not_divide(write_spec) -> None:
    path = write_spec("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 4, kernel: 3, groups: 2}\n")
    assert_one_line_error(run("summary", str(path)), needle="input channels 3 are not divisible by groups 2")
    path = write_spec("name: x\ninput: [4, 8, 8]\nlayers:\n  - {type: conv, out: 5, kernel: 3, groups: 2}\n")
    assert_one_line_error(run("summary", str(path)), needle="output channels 5 are not divisible by groups 2")


def test_wrong_value_type(write_spec) -> None:
    path = write_spec("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: four, kernel: 3}\n")
    assert_one_line_error(run("summary", str(path)), needle=f"{path}:4: layers[0].out: expected a positive integer,"
                                                            " got string 'four'")


def test_alias_bomb(write_spec) -> None:
    lines = ["name: bomb", "input: [3, 8, 8]", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path = write_spec("\n".join(lines) + "\nlayers: [{type: relu}]\n")
    assert_one_line_error(run("summary", str(path)), needle="alias bomb")


def test_unknown_option_is_one_line() -> None:
    assert_one_line_error(run("summary", "alexnet", "--bogus"), needle="No such option: --bogus")


# ------------------------------------------------------------------ the analytic core never imports torch

@pytest.mark.parametrize("args", [["summary", "alexnet"], ["check"], ["list"],
                                  ["summary", "vgg16", "--format", "json"]])
def test_core_commands_never_import_torch(args: list[str]) -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from convaudit.cli import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = sorted(m for m in ('torch', 'fvcore', 'numpy') if m in sys.modules)\n"
        "print('imported:', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stdout


# ------------------------------------------------------------------ the boundary, through the real entry point

@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "error: No such option: --bogus (see 'python -m convaudit --help')"),
    (["bogus"], "error: No such command 'bogus'. (see 'python -m convaudit --help')"),
    (["summary"], "error: Missing argument 'SPEC'. (see 'python -m convaudit summary --help')"),
    (["summary", "alexnet", "--batch", "0"], "error: Invalid value for '--batch' / '-b': 0 is not in the range "
                                             "x>=1. (see 'python -m convaudit summary --help')"),
    (["summary", "alexnet", "--bo\x1b]0;x\x07gus"], "error: No such option: --bo\\x1b]0;x\\x07gus (see 'python -m "
                                                 "convaudit summary --help')"),  # the terminal is never retitled
])
def test_usage_errors_are_one_line_through_main(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "convaudit", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert (done.returncode, done.stderr, done.stdout) == (2, message + "\n", "")


def test_bare_convaudit_shows_the_help() -> None:
    done = subprocess.run([sys.executable, "-m", "convaudit"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "Usage: python -m convaudit [OPTIONS] COMMAND" in done.stdout, done.stderr
    for command in ("summary", "rf", "report", "draw", "split", "check", "verify", "bench", "audit", "diff", "list",
                    "import", "schema"):
        assert f"│ {command} " in done.stdout, command


def test_schema_prints_the_published_file() -> None:
    """`convaudit schema > convaudit/spec/spec.schema.json` (as the library test says to) writes it exactly."""
    assert run("schema").stdout == (ROOT / "convaudit" / "spec" / "spec.schema.json").read_text(encoding="utf-8")


def test_every_renderer_is_registered_and_used() -> None:
    """emit's table covers every (command, --format) pair the options offer."""
    from convaudit.cli.emit import RENDERERS

    every = ("table", "json", "csv", "markdown")
    offered = {(kind, f) for kind in ("summary", "plan", "fit") for f in every}
    without_csv = ("table", "json", "markdown")
    offered |= {(kind, f) for kind in ("rf", "check", "list", "audit", "diff", "plan_diff") for f in without_csv}
    offered |= {(kind, f) for kind in ("verify", "distributed") for f in ("table", "json")}
    offered |= {("bench", f) for f in ("table", "json", "csv")}
    offered |= {("schema", "json"), ("text", "yaml"), ("text", "svg")}
    assert set(RENDERERS) == offered


# ------------------------------------------------------------------ diff says when a side has findings

def test_diff_marks_the_side_with_findings() -> None:
    result = run("diff", "alexnet", "--input", "224", "--input", "227")
    assert result.exit_code == 0, result.output
    rows = {line.split()[1] if line.startswith(" ~") else line.split()[0]: line
            for line in result.stdout.splitlines() if line.strip()}
    # at 224, conv1's (224 − 11)/4 + 1 = 54.25 floors to 54: conv1 and every shape its `expect:` pins after it
    # (pool1, conv2, pool2, pool5) differ from the paper's, and fc6's pinned `in: 9216` receives 256·5·5 = 6400
    for layer in ("conv1", "pool1", "conv2", "pool2", "pool5", "fc6"):
        assert "✗" in rows[layer].split()[3], rows[layer]  # beside side A's shape
    assert "✗" not in rows["relu1"] and "✗" not in rows["conv3"]
    footer = next(line for line in result.stdout.splitlines() if line.startswith("findings:"))
    assert footer.startswith("findings: A 6 errors, 4 warnings · B none")
    data = json.loads(run("diff", "alexnet", "--input", "224", "--input", "227", "--format", "json").stdout)
    assert (data["left"]["errors"], data["left"]["warnings"], data["right"]["errors"]) == (6, 4, 0)
    markdown = run("diff", "alexnet", "--input", "224", "--input", "227", "--format", "markdown").stdout
    assert "| **96×54×54 ✗** | **96×55×55** |" in markdown and "findings: A 6 errors" in markdown
    clean = run("diff", "vgg16", "vgg19").stdout
    assert "findings:" not in clean and "✗" not in clean  # no findings on either side: no marks, no line


# ------------------------------------------------------------------ a bare checkout, without installing

def test_a_bare_checkout_on_pythonpath_finds_its_architectures(tmp_path: Path) -> None:
    """No install: -S leaves out site's .pth files (the editable install's finder), PYTHONPATH names the
    checkout and, for the dependencies only, site-packages."""
    import site

    packages = [path for path in site.getsitepackages() if Path(path).is_dir()]
    code = ("import importlib.util, convaudit; from convaudit.spec.library import bundled_dir, load; "
            "assert importlib.util.find_spec('convaudit.architectures') is None; "
            "print(convaudit.__file__, bundled_dir(), load('alexnet').name)")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": ":".join([str(ROOT), *packages]), "PATH": "/usr/bin:/bin"},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    module, folder, name = done.stdout.split()
    assert module == str(ROOT / "convaudit" / "__init__.py") and folder == str(ROOT / "architectures")
    assert name == "alexnet"
