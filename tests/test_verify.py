"""verify: the analysis against a real PyTorch model, fvcore and FlopCounterMode (CPU)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.spec.library import load
from convaudit.spec.parser import parse_text

from .conftest import ARCHITECTURES, small_input

pytestmark = pytest.mark.needs_torch

WIDTH = {"COLUMNS": "140"}


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDTH)


def cpu_verify(report, **kwargs):
    import torch

    from convaudit.pytorch.verify import verify_report

    return verify_report(report, torch.device("cpu"), repeats=0, **kwargs)


# ------------------------------------------------------------------ every bundled architecture

@pytest.fixture
def zero_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights zero-filled instead of randomly initialised: no compared cell (shapes, parameter and buffer counts,
    fvcore's and FlopCounterMode's counts) depends on their values, and drawing VGG-E's 144 M random weights
    took about as long as running it. The model is still built, run forward and backward on the CPU, and counted."""
    import torch

    def zero(tensor, *args, **kwargs):
        with torch.no_grad():
            return tensor.zero_()

    for name in ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                 "xavier_normal_"):
        monkeypatch.setattr(torch.nn.init, name, zero)


# Past this many MACs a network is verified at a smaller input (AlexNet's 0.7 G and LeNet-5's stay whole; VGG's 7.6 to
# 19.6 G, U-Net's 150 G at 572, the video networks' 40 G do not): every rule is checked at any size, and the suite
# stays within its time.
# `convaudit verify NAME` at the network's own input passes too (README, "1-D, 3-D and encoder-decoder networks").
FULL_INPUT_MACS = 10**9


@pytest.mark.parametrize("path", ARCHITECTURES, ids=lambda p: p.stem)
def test_verify_passes_on_every_bundled_architecture(path, zero_init) -> None:
    report = analyze(load(str(path)))
    result = cpu_verify(report if report.totals.macs <= FULL_INPUT_MACS else small_input(report.spec))
    assert result.torch_error is None
    mismatches = [(row.name, column, cell) for row in result.rows for column, cell in row.cells.items()
                  if cell.status == "mismatch"]
    assert mismatches == []
    assert result.passed
    # every layer's shape and parameter count really was compared
    assert all(row.cells["shape"].status == "match" and row.cells["params"].status == "match"
               for row in result.rows)


def test_verify_cli_table_names_what_references_cannot_count() -> None:
    result = run("verify", "alexnet", "--repeats", "1", "--warmup", "0")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "not counted by fvcore (aten::max_pool2d): pool1, pool2, pool5" in out
    # conv2 has groups 2: torch sizes dW over all 96 input maps instead of 48 per group.
    assert "conv2: torch over-counts grouped-conv weight gradient by ×2" in out
    assert "time, median of 1: forward" in out
    assert "✓ all" in out and "comparable cells match" in out


def test_grouped_conv_overcount_is_torchs_and_exact() -> None:
    report = analyze(load("alexnet"))
    conv2 = next(row for row in cpu_verify(report).rows if row.name == "conv2")
    cell = conv2.cells["torch_backward"]
    assert cell.status == "torch-overcount"
    macs = 256 * 48 * 5 * 5 * 27 * 27  # Cout·(Cin/g)·K²·Hout·Wout
    assert cell.ours == 2 * (macs + macs)  # input gradient + weight gradient, 2 FLOPs per MAC
    assert cell.theirs == 2 * (macs + 2 * macs)  # torch's weight gradient counts all 96 input maps


def test_lenet5_sparse_table_is_really_sparse() -> None:
    import torch

    from convaudit.pytorch.builder import build_model, count_parameters

    model = build_model(analyze(load("lenet5")))
    c3 = model.module_for("C3")
    # (6·3 + 9·4 + 1·6)·25 weights + 16 biases; a masked full conv would hold 16·6·25 + 16 = 2416
    assert count_parameters(c3) == (1516, 0)
    assert count_parameters(model.module_for("OUTPUT")) == (0, 840)
    assert isinstance(model(torch.randn(2, 1, 32, 32)), torch.Tensor)


def test_attention_counted_by_fvcore_and_a_fused_kernel_named_not_failed() -> None:
    import torch
    from fvcore.nn import FlopCountAnalysis

    from convaudit.pytorch.modules import SelfAttention
    from convaudit.pytorch.verify import fvcore_cell

    text = ("name: t\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 16, kernel: 4, stride: 4}\n"
            "  - {type: reshape, shape: [16, 4]}\n  - {type: permute, order: [1, 0]}\n"
            "  - {type: attention, heads: 2}\n")
    report = analyze(parse_text(text))
    attention = report.layers[-1]
    row = next(row for row in cpu_verify(report).rows if row.type == "attention")
    # 4 tokens of 16: in-projection 4·16·48, Q·Kᵀ and A·V 2·4·4·16, out-projection 4·16·16
    assert row.cells["fvcore_macs"].status == "match"
    assert row.cells["fvcore_macs"].theirs == 4 * 16 * 48 + 2 * 4 * 4 * 16 + 4 * 16 * 16
    # nn.MultiheadAttention called as a module in eval under no_grad runs one fused kernel fvcore cannot see
    module = SelfAttention(16, 2, True).attention.eval()
    x = torch.randn(1, 4, 16)
    with torch.no_grad():
        fused = FlopCountAnalysis(lambda_module(module), x).unsupported_ops_warnings(False)
        counted, unsupported = int(fused.total()), dict(fused.unsupported_ops())
    assert counted == 0 and "aten::_native_multi_head_attention" in unsupported
    cell = fvcore_cell(attention, counted, unsupported)
    assert cell.status == "not-counted" and "aten::_native_multi_head_attention" in cell.note


def lambda_module(attention):
    import torch

    class Call(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = attention

        def forward(self, x):
            return self.attention(x, x, x, need_weights=False)[0]

    return Call()


def test_json_contract() -> None:
    result = run("verify", "lenet5", "--format", "json", "--repeats", "2", "--warmup", "0", "--batch", "3")
    data = json.loads(result.stdout)
    assert data["passed"] is True and data["batch"] == 3
    assert data["timings"]["forward"]["repeats"] == 2
    c3 = next(layer for layer in data["layers"] if layer["name"] == "C3")
    assert c3["cells"]["shape"] == {"status": "match", "ours": [16, 10, 10], "theirs": [16, 10, 10], "note": "",
                                    "shown": ""}
    s2 = next(layer for layer in data["layers"] if layer["name"] == "S2")
    assert s2["cells"]["fvcore_macs"]["status"] == "not-counted"


# ------------------------------------------------------------------ when PyTorch cannot run it

def test_alexnet_224_shows_pytorchs_error_and_the_prediction() -> None:
    result = run("verify", "alexnet", "--input", "224")
    assert result.exit_code == 1
    out = result.stdout
    # pool5 gives 256·5·5 = 6400 features, fc6 was built for 9216
    assert "PyTorch raised in fc6: RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x6400 and 9216x4096)" \
        in out
    assert "(224 − 11 + 2·0)/4 + 1 = 54.25" in out
    assert "fc6 pins in: 9216 but receives 256×5×5 = 6400" in out


def test_batchnorm_on_vectors_at_batch_one() -> None:
    text = ("name: t\ninput: [2, 5, 7]\nlayers:\n  - {type: conv, out: 2, kernel: [1, 3], stride: [2, 1], "
            "padding: [0, 4], dilation: [1, 3]}\n  - {type: flatten}\n  - {type: batchnorm}\n"
            "  - {type: rbf, out: 3}\n")
    result = cpu_verify(analyze(parse_text(text)))
    assert result.passed, result.torch_error


def test_a_layer_the_analysis_refuses_fails_in_pytorch_too() -> None:
    text = ("name: t\ninput: [1, 8, 8]\nlayers:\n"
            "  - {type: conv, out: 2, kernel: 5}\n  - {type: conv, out: 2, kernel: 5}\n")  # 8 → 4 → (4 − 5)/1 + 1 = 0
    result = cpu_verify(analyze(parse_text(text)))
    assert result.torch_error and "PyTorch raised in conv2" in result.torch_error
    assert result.explanation[-1].kind == "non-positive-output"


# ------------------------------------------------------------------ the check can fail

def tampered(report, name: str, **changes):
    """The report with one layer's outcome changed: a planted discrepancy."""
    layers = tuple(dataclasses.replace(layer, outcome=dataclasses.replace(layer.outcome, **changes))
                   if layer.name == name else layer for layer in report.layers)
    return dataclasses.replace(report, layers=layers)


def test_planted_wrong_macs_is_caught() -> None:
    report = analyze(load("lenet5"))
    c1 = report.layer("C1")
    result = cpu_verify(tampered(report, "C1", macs=c1.outcome.macs + 1))
    row = next(row for row in result.rows if row.name == "C1")
    assert row.cells["fvcore_macs"].status == "mismatch"
    assert row.cells["torch_forward"].status == "mismatch"
    assert not result.passed


def test_planted_wrong_shape_and_params_are_caught() -> None:
    report = analyze(load("lenet5"))
    result = cpu_verify(tampered(report, "C3", shape=(16, 9, 9), weights=1499))
    row = next(row for row in result.rows if row.name == "C3")
    assert row.cells["shape"].status == "mismatch" and row.cells["params"].status == "mismatch"


def test_planted_discrepancy_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    import convaudit.resolve as resolve

    real = resolve.analysed  # what the commands analyse through
    monkeypatch.setattr(resolve, "analysed", lambda spec, batch=1, dtype="fp32": tampered(
        real(spec, batch, dtype), "F6", macs=10081))
    result = run("verify", "lenet5", "--repeats", "0")
    assert result.exit_code == 1
    # the planted count (10,081 MACs; F6 is 120·84 = 10,080) is shown beside fvcore's own, in F6's row
    f6 = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("F6 "))
    assert "✗ 10,080 ≠ ours 10,081" in f6


# ------------------------------------------------------------------ devices and memory

def test_gpu_without_cuda_is_one_line_exit_2() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = run("verify", "lenet5", "--gpu")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --gpu: CUDA is not available") and result.stdout == ""


def test_model_too_large_is_refused_before_building(monkeypatch: pytest.MonkeyPatch) -> None:
    import convaudit.pytorch.runtime as runtime

    monkeypatch.setattr(runtime, "available_bytes", lambda device: 100 * 2**20)  # 100 MiB free
    result = run("verify", "vgg16")
    assert result.exit_code == 2
    assert "the model needs about" in result.stderr and "only 100.0 MiB of host memory is free" in result.stderr
    assert "--force" in result.stderr and result.stdout == ""


def test_force_runs_anyway(monkeypatch: pytest.MonkeyPatch) -> None:
    import convaudit.pytorch.runtime as runtime

    monkeypatch.setattr(runtime, "available_bytes", lambda device: 1024)
    assert run("verify", "lenet5", "--force", "--repeats", "0").exit_code == 0


# ------------------------------------------------------------------ random networks against PyTorch

@st.composite
def random_network(draw: st.DrawFn) -> str:
    """A random chain: convs, pools with and without ceil, LRN, ReLU, dropout, then a linear layer."""
    in_channels = channels = draw(st.integers(1, 6))
    height, width = draw(st.integers(6, 28)), draw(st.integers(6, 28))
    layers = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool", "lrn", "relu", "dropout"]))
        if kind == "conv":
            groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
            out = groups * draw(st.integers(1, 4))
            kernel = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
            stride = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
            layers.append(f"{{type: conv, out: {out}, kernel: {kernel}, stride: {stride}, "
                          f"padding: {draw(st.integers(0, 2))}, dilation: {draw(st.integers(1, 2))}, "
                          f"groups: {groups}, bias: {str(draw(st.booleans())).lower()}}}")
            channels = out
        elif kind in ("maxpool", "avgpool"):
            kernel = draw(st.integers(1, 3))
            layers.append(f"{{type: {kind}, kernel: {kernel}, stride: {draw(st.integers(1, 3))}, "
                          f"padding: {draw(st.integers(0, kernel // 2))}, ceil: {str(draw(st.booleans())).lower()}}}")
        elif kind == "lrn":
            layers.append(f"{{type: lrn, size: {draw(st.integers(1, 5))}}}")
        else:
            layers.append(f"{{type: {kind}}}")
    layers.append(f"{{type: linear, out: {draw(st.integers(1, 10))}, bias: {str(draw(st.booleans())).lower()}}}")
    body = "\n".join(f"  - {layer}" for layer in layers)
    return f"name: random\ninput: [{in_channels}, {height}, {width}]\nlayers:\n{body}\n"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(random_network())
def test_random_networks_match_pytorch_fvcore_and_flopcounter(text: str) -> None:
    report = analyze(parse_text(text))
    assume(report.halted is None)  # a kernel larger than the map: not a network to compare
    result = cpu_verify(report)
    assert result.torch_error is None, (result.torch_error, text)
    for row in result.rows:
        layer = report.layer(row.name)
        assert row.cells["shape"].status == "match", (row.name, row.cells["shape"], text)
        assert row.cells["params"].status == "match", (row.name, row.cells["params"], text)
        fvcore, forward = row.cells["fvcore_macs"], row.cells["torch_forward"]
        if layer.type in ("conv", "linear"):
            assert fvcore.status == "match" and fvcore.theirs == layer.macs, (row.name, fvcore, text)
            assert forward.status == "match" and forward.theirs == 2 * layer.macs, (row.name, forward, text)
        else:
            assert fvcore.status in ("none", "not-counted") and forward.status == "none", (row.name, text)
        assert row.cells["torch_backward"].status in ("match", "none", "torch-overcount"), (row.name, text)
    assert result.passed


@st.composite
def random_dag(draw: st.DrawFn) -> str:
    """A random small graph: a stem, then inception-like concats and residual adds (projected when the
    channels or the stride change), then a pool and a linear layer."""
    size = draw(st.integers(8, 20))
    lines = [f"name: dag\ninput: [{draw(st.integers(1, 5))}, {size}, {size}]\nlayers:",
             f"  - {{type: conv, name: stem, out: {(channels := draw(st.integers(2, 6)))}, kernel: 3, padding: 1}}"]
    current = "stem"
    for index in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["concat", "add", "plain"]))
        if kind == "concat":
            branches, total = [], 0
            for b in range(draw(st.integers(2, 3))):
                name = f"m{index}b{b}"
                if draw(st.booleans()):
                    kernel = draw(st.sampled_from([1, 3, 5]))
                    out = draw(st.integers(1, 5))
                    lines.append(f"  - {{type: conv, name: {name}, out: {out}, kernel: {kernel}, "
                                 f"padding: {kernel // 2}, from: {current}}}")
                else:  # GoogLeNet's pool branch: 3×3 stride-1 max-pool, then a 1×1 projection
                    out = draw(st.integers(1, 5))
                    lines.append(f"  - {{type: maxpool, name: {name}p, kernel: 3, stride: 1, padding: 1, "
                                 f"from: {current}}}")
                    lines.append(f"  - {{type: conv, name: {name}, out: {out}, kernel: 1}}")
                branches.append(name)
                total += out
            lines.append(f"  - {{type: concat, name: m{index}, from: [{', '.join(branches)}]}}")
            current, channels = f"m{index}", total
        elif kind == "add":
            width = draw(st.integers(1, 6))
            stride = draw(st.sampled_from([1, 2]))
            groups = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0 and width % g == 0]))
            lines.append(f"  - {{type: conv, name: r{index}a, out: {width}, kernel: 3, stride: {stride}, "
                         f"padding: 1, groups: {groups}, bias: false, from: {current}}}")
            lines.append(f"  - {{type: batchnorm, name: r{index}n}}")
            lines.append(f"  - {{type: relu, name: r{index}r}}")
            lines.append(f"  - {{type: conv, name: r{index}b, out: {width}, kernel: 3, padding: 1}}")
            shortcut = current
            if stride != 1 or width != channels:
                shortcut = f"r{index}p"
                lines.append(f"  - {{type: conv, name: {shortcut}, out: {width}, kernel: 1, stride: {stride}, "
                             f"from: {current}}}")
            lines.append(f"  - {{type: add, name: r{index}, from: [r{index}b, {shortcut}]}}")
            current, channels = f"r{index}", width
        else:
            lines.append(f"  - {{type: relu, name: p{index}, from: {current}}}")
            current = f"p{index}"
    lines.append(f"  - {{type: {draw(st.sampled_from(['globalavgpool', 'relu']))}, name: head, from: {current}}}")
    lines.append(f"  - {{type: linear, name: fc, out: {draw(st.integers(1, 8))}}}")
    return "\n".join(lines) + "\n"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dag())
def test_random_graphs_match_pytorch_fvcore_and_flopcounter(text: str) -> None:
    report = analyze(parse_text(text))
    assert report.halted is None, (report.halted, text)
    result = cpu_verify(report)
    assert result.torch_error is None, (result.torch_error, text)
    for row in result.rows:
        for column in ("shape", "params"):
            assert row.cells[column].status == "match", (row.name, column, row.cells[column], text)
        for column in ("fvcore_macs", "torch_forward", "torch_backward"):
            assert row.cells[column].status in ("match", "none", "not-counted", "torch-overcount"), \
                (row.name, column, row.cells[column], text)
        if row.type in ("conv", "linear"):
            assert row.cells["fvcore_macs"].status == "match" and row.cells["torch_forward"].status == "match"
    assert result.passed
    assert all(cell.status in ("match", "torch-overcount") for cell in result.totals.cells.values()), text


def test_every_tensor_a_model_returns_joins_the_loss() -> None:
    import torch

    from convaudit.pytorch.verify import tensors_in

    out, aux = torch.zeros(2), torch.ones(3)
    # torchvision's segmentation models return {"out": …, "aux": …}; detection models lists of dicts
    assert [t.shape for t in tensors_in({"out": out, "aux": aux})] == [out.shape, aux.shape]
    assert len(tensors_in([{"boxes": out}, (aux, "label")])) == 2 and tensors_in("text") == []
