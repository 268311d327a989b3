"""convaudit import: PyTorch modules (torch.export) and ONNX files into specs, checked against PyTorch itself.

The reference numbers come from torch: sum(p.numel()) over the module, FlopCounterMode (2 FLOPs per
multiply-add of conv and matmul), fvcore (one flop per multiply-add, converted as `verify` documents it),
and forward hooks for shapes. Models are traced on the meta device at small inputs where they allow it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.importers import read, read_model, spec_of, spec_text
from convaudit.importers.targets import is_target, load_torchvision
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text

from .conftest import ROOT

pytestmark = pytest.mark.needs_torch
WIDTH = {"COLUMNS": "140"}


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDTH)


def torch_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def flop_counter_total(model, shape) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        x = torch.empty((1, *shape))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.to("meta").eval()(x)
    return counter.get_total_flops()


# ------------------------------------------------------------------ torchvision next to CPU torch

def test_torchvision_imports_next_to_cpu_torch() -> None:
    torchvision = load_torchvision()
    assert "resnet18" in torchvision.models.list_models(module=torchvision.models)
    assert load_torchvision() is torchvision  # once only


def test_targets_are_recognised() -> None:
    assert is_target("torchvision:resnet50")
    assert is_target("model.onnx") and is_target("dir/Model.ONNX")
    assert is_target("my_pkg.models:build_net")
    assert not is_target("resnet50") and not is_target("architectures/alexnet.yaml")
    assert not is_target("googlenet+aux")


def test_importers_never_import_torch_at_module_level() -> None:
    for path in sorted((ROOT / "convaudit" / "importers").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = [alias.name for node in top if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module or "" for node in top if isinstance(node, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] in ("torch", "torchvision", "onnx")], path.name


# ------------------------------------------------------------------ torchvision models against PyTorch

# (name, input side): a few families, each with its own operators; small inputs keep the trace fast.
MODELS = [("resnet18", 64), ("mobilenet_v3_small", 64), ("shufflenet_v2_x0_5", 64), ("regnet_x_400mf", 64)]


@pytest.mark.parametrize(("name", "side"), MODELS, ids=[m[0] for m in MODELS])
def test_torchvision_import_counts_what_pytorch_counts(name: str, side: int) -> None:
    torchvision = load_torchvision()
    imported = read(f"torchvision:{name}", input_size=(side, side))
    report = analyze(spec_of(imported))
    model = torchvision.models.get_model(name, weights=None)
    assert report.totals.params == torch_params(model)
    # FlopCounterMode counts 2 per multiply-add of conv and linear: our FLOPs.
    assert report.totals.flops == flop_counter_total(model, (3, side, side))


def test_layer_names_are_module_paths_and_merges_use_from() -> None:
    spec = spec_of(read("torchvision:resnet18", input_size=(64, 64)), fold=False)
    names = [layer.name for layer in spec.layers]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"]
    add = spec.layer("layer1.0.add")
    assert add.inputs == ("layer1.0.bn2", "maxpool")  # the residual: the block's input
    assert "layer1.0.relu_2" in names  # the block's one ReLU module, called a second time


def test_resnet50_import_reads_like_the_bundled_spec() -> None:
    imported = read("torchvision:resnet50")
    text = spec_text(imported)
    assert "blocks:\n  bottleneck:\n" in text
    assert "{block: bottleneck_2, name: layer3, repeat: 5, start: 1, out: 256}" in text
    assert "out: $out * 4" in text
    mine = analyze(spec_of(imported))
    bundled = analyze(parse_text((ROOT / "architectures" / "resnet50.yaml").read_text(encoding="utf-8")))
    assert (mine.totals.params, mine.totals.macs) == (bundled.totals.params, bundled.totals.macs)
    convs = {layer.name: layer.output_shape for layer in bundled.layers if layer.type == "conv"}
    assert {layer.name: layer.output_shape for layer in mine.layers if layer.type == "conv"} == convs


@pytest.mark.parametrize("name", ["googlenet", "shufflenet_v2_x1_0"])
def test_folded_and_flat_specs_are_the_same_network(name: str) -> None:
    imported = read(f"torchvision:{name}", input_size=(96, 96) if name != "googlenet" else (224, 224))
    folded, flat = spec_of(imported), spec_of(imported, fold=False)
    assert len(spec_text(imported)) < len(spec_text(imported, fold=False))

    def layers(spec):
        return [(layer.name, layer.type, dict(layer.params), layer.inputs) for layer in spec.layers]

    assert layers(folded) == layers(flat)


def test_repeated_blocks_at_the_models_root_fold_under_their_own_names() -> None:
    """nn.Sequential(block, block, block): the blocks are 0, 1, 2, with no common prefix to repeat under."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.relu(self.norm(self.conv(x)))

    model = nn.Sequential(Block(), Block(), Block())
    folded = spec_of(read_model(model, (4, 6, 6)))
    assert analyze(folded).totals.params == torch_params(model)
    assert [layer.name for layer in folded.layers if layer.type == "conv"] == ["0.conv", "1.conv", "2.conv"]


def test_parameters_outside_modules_are_counted() -> None:
    from tests.import_models import tokens

    model = tokens()
    spec = spec_of(read_model(model, (3, 16, 16)))
    report = analyze(spec)
    assert report.totals.params == torch_params(model)
    types = {layer.name: layer.type for layer in spec.layers}
    assert types["gamma"] == "scale" and types["class_token"] == "classtoken"
    assert types["pos_embedding"] == "posembedding" and types["select"] == "select"
    assert report.layer("class_token").output_shape == (17, 8)  # 16 patches and the token


def test_eval_identities_vanish_and_dropout_is_kept() -> None:
    from tests.import_models import branches

    model = branches()
    spec = spec_of(read_model(model, (3, 8, 8)))
    types = [layer.type for layer in spec.layers]
    assert "dropout" in types and "slice" in types and "mul" in types
    assert not any("skip" in layer.name for layer in spec.layers)  # nn.Identity: no layer
    report = analyze(spec)
    assert report.totals.params == torch_params(model)
    assert report.totals.buffers == 16  # running mean and variance of 8 channels


def test_an_operator_convaudit_cannot_count_is_one_line_naming_it_and_the_module() -> None:
    result = run("import", "tests.import_models:sorted_channels")
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert "aten.sort" in message and "features.1" in message


# ------------------------------------------------------------------ the CLI

def test_import_cli_writes_a_spec_that_every_command_reads(tmp_path: Path) -> None:
    out = tmp_path / "net.yaml"
    result = run("import", "tests.import_models:branches", "--arg", "classes=7", "-o", str(out), "--input", "16")
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert 'imported: {from: "tests.import_models:branches", args: {classes: 7}}' in text
    assert "{type: linear, name: fc, out: 7}" in text
    summary = run("summary", str(out), "--format", "json", "--input", "32")
    assert summary.exit_code == 0, summary.output
    assert json.loads(summary.stdout)["input"] == [3, 32, 32]


def test_every_command_accepts_a_target() -> None:
    result = run("summary", "torchvision:resnet18", "--input", "64", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["totals"]["params"] == 11_689_512  # torchvision's documented num_params
    check = run("check", "torchvision:resnet18", "--input", "225")
    assert check.exit_code in (0, 1), check.output
    assert "resnet18 at 3×225×225" in check.stdout


def test_bad_args_and_targets_are_one_line_errors() -> None:
    for args, needle in ((["import", "torchvision:resnet18", "--arg", "oops"], "KEY=VALUE"),
                         (["import", "torchvision:resnet1800"], "did you mean 'resnet18'"),
                         (["import", "no_such_module:f"], "cannot import module"),
                         (["summary", "missing.onnx"], "no such file")):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.stderr and "\n" not in result.stderr.strip(), result.stderr


def test_verify_against_the_users_module(tmp_path: Path) -> None:
    out = tmp_path / "branches.yaml"
    assert run("import", "tests.import_models:branches", "-o", str(out), "--input", "16").exit_code == 0
    # the origin the spec records is code: called only when asked, and said first
    result = run("verify", str(out), "--repeats", "0", "--format", "json", "--against", "imported")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (f"--against imported: calling tests.import_models:branches(), as {out} "
                                             "records under imported:")
    data = json.loads(result.stdout)
    assert "against tests.import_models:branches" in data["spec"]
    explicit = run("verify", "torchvision:resnet18", "--input", "64", "--against", "torchvision:resnet18",
                   "--repeats", "0")
    assert explicit.exit_code == 0, explicit.output
    assert "comparable cells match" in explicit.stdout


def test_a_module_running_several_operators_is_one_call_in_verify(tmp_path: Path) -> None:
    """Its last operator's layer takes the module's path; the others are operations of its forward, not further
    calls; verify compares the module's parameters and MACs with the sum of its layers."""
    from tests.import_models import with_logits

    spec = spec_of(read_model(with_logits(), (3, 5, 5)))
    names = [layer.name for layer in spec.layers]
    assert names[-1] == "logits" and all(n.startswith("logits.") for n in names[2:-1]), names
    out = tmp_path / "logits.yaml"
    assert run("import", "tests.import_models:with_logits", "-o", str(out), "--input", "5").exit_code == 0
    result = run("verify", str(out), "--repeats", "0", "--against", "imported")
    assert result.exit_code == 0, result.output


def test_verify_against_names_what_fvcore_cannot_count_and_leaves_out_never_run_modules() -> None:
    import torch

    from convaudit.pytorch.against import verify_against

    target = "tests.import_models:aux_mean"
    imported = read(target, input_size=(16, 16))
    assert imported.unused == ("aux.0", "aux.1", "aux.3")
    report = analyze(spec_of(imported))
    result = verify_against(report, target, {}, torch.device("cpu"), repeats=0, imported=imported)
    assert result.passed, result.totals
    pool = next(row for row in result.rows if row.type == "globalavgpool")
    # x.mean([2, 3]) is written in forward (no module): fvcore reports aten::mean unsupported and counts 0
    cell = pool.cells["fvcore_macs"]
    assert (cell.status, cell.ours, cell.theirs) == ("not-counted", 8 * 16 * 16, 0)
    assert cell.note == "not counted by fvcore: aten::mean"
    # running statistics: the stem's 2·8 count, aux.1's 2·4 (never run in eval) are left out as its params are
    assert result.totals.cells["buffers"].theirs == 2 * 8
    # fvcore's total: stem conv 8·3·9·16·16 + batchnorm 2·8·16·16 + fc 8·5, the mean left out
    assert result.totals.cells["fvcore_macs"].theirs == 8 * 3 * 9 * 16 * 16 + 2 * 8 * 16 * 16 + 8 * 5


def test_verify_against_a_different_model_fails() -> None:
    result = run("verify", "torchvision:resnet18", "--input", "64", "--against", "torchvision:resnet34",
                 "--repeats", "0")
    assert result.exit_code == 1, result.output


# ------------------------------------------------------------------ ONNX

def test_onnx_import_round_trips_the_torch_import(tmp_path: Path) -> None:
    import torch

    from tests.import_models import branches

    model = branches().eval()
    path = tmp_path / "branches.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(path), dynamo=True, optimize=False)
    from_onnx = analyze(spec_of(read(str(path)))).totals
    from_torch = analyze(spec_of(read_model(model, (3, 16, 16)))).totals
    assert (from_onnx.params, from_onnx.buffers, from_onnx.macs) == \
        (from_torch.params, from_torch.buffers, from_torch.macs)
    assert from_onnx.params == torch_params(model)
    # `summary model.onnx` needs onnx only: torch is never imported.
    code = ("import sys; from convaudit.cli import app; from typer.testing import CliRunner; "
            f"r = CliRunner().invoke(app, ['summary', {str(path)!r}]); assert r.exit_code == 0, r.output; "
            "assert 'torch' not in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.stdout.strip().endswith("ok"), done.stderr[-2000:]


# ------------------------------------------------------------------ the bundled modern networks

BUNDLED = ["mobilenet_v2", "efficientnet_b0", "densenet121", "convnext_tiny", "shufflenet_v2_x1_0", "vit_b_16"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_modern_network_matches_torchvision(name: str) -> None:
    """Params against sum(p.numel()); MACs against fvcore, converted as `verify` documents: fvcore counts one
    flop per multiply-add of conv, linear and matmul, plus its own estimate for norms and adaptive pools."""
    import torch
    from fvcore.nn import FlopCountAnalysis

    from convaudit.pytorch.verify import fvcore_expected, quiet
    from convaudit.spec.library import load

    report = analyze(load(name))
    model = load_torchvision().models.get_model(name, weights=None).eval()
    assert report.totals.params == torch_params(model)
    with quiet(), torch.no_grad():
        analysis = FlopCountAnalysis(model, torch.randn(1, *report.input)).unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False).tracer_warnings("none")
        total, unsupported = int(analysis.total()), set(analysis.unsupported_ops())
    # fvcore has no handle for torch's fused attention (ViT's nn.MultiheadAttention at inference) nor for
    # aten::mean (ShuffleNet's pooling): it reports them unsupported, and those layers are left out of both sides.
    ops = {layer.name: layer.op for layer in read(f"torchvision:{name}").layers}
    skipped = {"MultiheadAttention": "aten::_native_multi_head_attention", "aten.mean": "aten::mean"}
    left_out = [layer for layer in report.layers if ops[layer.name] in skipped]
    assert all(skipped[ops[layer.name]] in unsupported for layer in left_out)
    assert sum(fvcore_expected(layer) for layer in report.layers if layer not in left_out) == total


def test_partial_keeps_what_it_cannot_count_as_named_uncounted_layers(tmp_path: Path) -> None:
    out = tmp_path / "sorted.yaml"
    result = run("import", "tests.import_models:sorted_channels", "--partial", "-o", str(out), "--input", "8")
    assert result.exit_code == 0, result.output
    spec = load(str(out))
    (kept,) = [layer for layer in spec.layers if layer.type == "uncounted"]
    assert "sort" in kept.params["op"]
    report = analyze(spec)
    # the conv is still counted: 4·3·3·3 weights + 4 biases; its 4·6·6 outputs × 27 multiply-adds
    assert report.totals.params == 4 * 3 * 3 * 3 + 4 and report.totals.macs == 4 * 6 * 6 * 27
    summary = run("summary", str(out))
    assert summary.exit_code == 0 and "not counted: 1 operator layer" in summary.stdout, summary.output
    assert "features.1 (aten.sort.default)" in summary.stdout


def test_input_shape_traces_a_1d_model_at_its_own_rank(tmp_path: Path) -> None:
    out = tmp_path / "audio.yaml"
    result = run("import", "tests.import_models:audio", "--input-shape", "1,4000", "-o", str(out))
    assert result.exit_code == 0, result.output
    spec = load(str(out))
    assert spec.input == (1, 4000)
    # conv1: (4000 − 80)/4 + 1 = 981; pool: 981 // 4 = 245; conv2: 245 − 3 + 1 = 243
    report = analyze(spec)
    assert [layer.output_shape for layer in report.layers if layer.type == "conv"] == [(8, 981), (16, 243)]
    from tests.import_models import audio

    assert report.totals.params == sum(p.numel() for p in audio().parameters())
    bad = run("import", "tests.import_models:audio", "--input-shape", "1,x")
    assert bad.exit_code == 2 and "--input-shape" in bad.stderr and "\n" not in bad.stderr.strip()


def test_a_block_parameter_never_takes_the_name_of_a_key_of_the_blocks_use(tmp_path: Path) -> None:
    # the two windows differ in their slices' start: `start` is also `repeat:`'s first index in a block's use
    out = tmp_path / "windows.yaml"
    result = run("import", "tests.import_models:windows", "-o", str(out), "--input", "8")
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "block: window" in text and "{start: null" not in text and ", start: null" not in text
    spec = load(str(out))
    assert [layer.params["start"] for layer in spec.layers if layer.type == "slice" and layer.params["start"]] == [1, 3]


def test_timm_habits_count_as_torch_does() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convaudit.pytorch.verify import counted_by_torch
    from tests.import_models import quirks

    model = quirks().eval()
    report = analyze(spec_of(read_model(model, (6, 8))))
    # parameters: the buffer inside the qkv bias is not one; the MLP's and the conv's weights are
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    # multiply-adds: every matrix product and conv that runs, constants' included, as FlopCounterMode sees them
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 6, 8))
    assert sum(layer.macs for layer in report.layers if counted_by_torch(layer)) == counter.get_total_flops() // 2
    # by hand: qkv 6·8·24, the MLP 6·(2·16 + 16·8), the conv 6·4·8
    assert counter.get_total_flops() // 2 == 6 * 8 * 24 + 6 * (2 * 16 + 16 * 8) + 6 * 4 * 8
    # at batch 4 the samples' work is 4 times; the position table's and the encoding's is done once
    at_four = analyze(report.spec, batch=4)
    by_name = {layer.name: layer for layer in report.layers}
    for layer in at_four.layers:
        once = layer.name.startswith(("mlp", "fourier"))
        assert layer.macs == by_name[layer.name].macs * (1 if once else 4), layer.name


def test_timm_habits_verify_against_the_module_and_the_spec(tmp_path: Path) -> None:
    out = tmp_path / "quirks.yaml"
    assert run("import", "tests.import_models:quirks", "--input-shape", "6,8", "-o", str(out)).exit_code == 0
    for extra in ([], ["--against", "imported"]):  # the spec's own model, then the user's module
        result = run("verify", str(out), "--repeats", "0", *extra)
        assert result.exit_code == 0, result.output
        assert "comparable cells match" in result.stdout
