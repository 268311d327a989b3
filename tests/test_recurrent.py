"""Recurrent layers (lstm, gru, rnn): golden numbers written out, Hypothesis against nn.LSTM/GRU/RNN themselves
(sum(p.numel()), FlopCounterMode on the meta device, output shapes), the bytes autograd saves, and imports."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convaudit.core.analysis import analyze
from convaudit.core.layers import REGISTRY
from convaudit.core.layers.base import Placement, Tensor
from convaudit.spec.parser import parse_text

TORCH_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}

SPEC = """
name: speech
input: [7, 10]
layers:
  - {type: lstm, name: encoder, hidden: 20, layers: 2, bidirectional: true, batch_first: true}
  - {type: gru, name: decoder, hidden: 8, batch_first: true, bias: false}
  - {type: rnn, name: summary, hidden: 4, batch_first: true, nonlinearity: relu, returns: h_n}
  - {type: select, index: 0}
  - {type: linear, name: head, out: 3}
"""


def test_golden_counts_written_out() -> None:
    report = analyze(parse_text(SPEC, "speech.yaml"), batch=2)
    encoder, decoder, summary = (report.layer(name) for name in ("encoder", "decoder", "summary"))
    # LSTM, T = 7, I = 10, H = 20, 2 layers, both directions: the second layer reads 2·20 = 40 features
    assert encoder.output_shape == (7, 40)
    assert encoder.weights == 2 * (4 * 20 * (10 + 20) + 4 * 20 * (40 + 20))  # 14,400
    assert encoder.biases == 2 * 2 * 2 * 4 * 20  # b_ih and b_hh per layer and direction: 640
    assert encoder.macs == 2 * 7 * 2 * (4 * 20 * (10 + 20) + 4 * 20 * (40 + 20))  # batch 2: 201,600
    assert encoder.other_ops == 2 * 7 * 2 * 2 * (13 * 20 + 2 * 4 * 20)  # 13 per unit and 8 bias adds: 23,520
    # GRU without bias on the 40 features: 3 gates, no bias adds
    assert (decoder.weights, decoder.biases) == (3 * 8 * (40 + 8), 0)
    assert decoder.macs == 2 * 7 * 3 * 8 * (40 + 8)
    assert decoder.other_ops == 2 * 7 * 10 * 8
    # RNN returning h_n: [L·D, H] with the batch at dimension 1, whatever batch_first says
    assert summary.output_shape == (1, 4) and summary.outcome.placement == Placement(1)
    assert summary.params == 4 * (8 + 4) + 2 * 4 and summary.macs == 2 * 7 * 4 * (8 + 4)
    assert summary.other_ops == 2 * 7 * (2 * 4 + 2 * 4)
    assert report.layer("select1").output_shape == (4,)
    assert report.totals.params == 15_040 + 1_152 + 56 + 15


@pytest.mark.needs_torch
def test_golden_numbers_from_pytorch_itself() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    lstm = torch.nn.LSTM(10, 20, num_layers=2, bidirectional=True, batch_first=True)
    assert sum(p.numel() for p in lstm.parameters()) == 15_040
    with torch.device("meta"):
        lstm = torch.nn.LSTM(10, 20, num_layers=2, bidirectional=True, batch_first=True)
    with FlopCounterMode(display=False) as counter:
        lstm(torch.empty(2, 7, 10, device="meta"))
    assert counter.get_total_flops() == 2 * 201_600  # FLOPs = 2 × MACs: the mm's of every step


def test_explain_writes_the_arithmetic() -> None:
    report = analyze(parse_text(SPEC, "speech.yaml"))
    explained = REGISTRY["lstm"].explain(report.layer("encoder"))
    assert explained.weights == "2·(4·20·(10 + 20) + 4·20·(40 + 20)) = 14,400 weights + 640 biases"
    assert explained.macs == "7 steps × 2 directions × (4·20·(10 + 20) + 4·20·(40 + 20)) = 100,800"


def test_the_batch_must_be_where_the_layer_takes_it() -> None:
    spec = SPEC.replace("bidirectional: true, batch_first: true", "bidirectional: true")
    report = analyze(parse_text(spec, "speech.yaml"))
    assert report.halted is not None and report.halted.layer.name == "encoder"
    assert "batch_first: false takes its batch at dimension 1" in report.halted.problem.message
    with pytest.raises(Exception, match="proj_size 20 must be smaller than hidden 20"):
        parse_text(SPEC.replace("batch_first: true}", "batch_first: true, proj_size: 20}", 1), "speech.yaml")


def test_schema_knows_the_new_types() -> None:
    import json
    from pathlib import Path

    import jsonschema
    import yaml

    schema = json.loads((Path(__file__).parent.parent / "convaudit" / "spec" / "spec.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(SPEC), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(SPEC.replace("returns: h_n", "returns: c_n")), schema)  # LSTM's only


# ------------------------------------------------------------------ against PyTorch, at random

@st.composite
def recurrent_layers(draw) -> tuple[str, dict, int, int, int]:
    kind = draw(st.sampled_from(sorted(GATES)))
    hidden = draw(st.integers(2, 6))
    params = {"hidden": hidden, "layers": draw(st.integers(1, 3)), "bidirectional": draw(st.booleans()),
              "batch_first": draw(st.booleans()), "bias": draw(st.booleans()), "dropout": 0, "returns": "output",
              "proj_size": draw(st.integers(0, hidden - 1)) if kind == "lstm" else 0, "nonlinearity": "tanh"}
    return kind, params, draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3))


@pytest.mark.needs_torch
@settings(max_examples=30, deadline=None)
@given(recurrent_layers(), st.booleans())
def test_shapes_parameters_and_macs_match_pytorch(drawn, input_grad: bool) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    kind, params, features, steps, batch = drawn
    options = {"proj_size": params["proj_size"]} if kind == "lstm" else {}
    with torch.device("meta"):
        module = getattr(torch.nn, TORCH_NAMES[kind])(features, params["hidden"], num_layers=params["layers"],
                                                      bias=params["bias"], batch_first=params["batch_first"],
                                                      bidirectional=params["bidirectional"], **options)
    full = (batch, steps, features) if params["batch_first"] else (steps, batch, features)
    x = torch.empty(full, device="meta", requires_grad=input_grad)
    with FlopCounterMode(display=False) as forward:
        output, state = module(x)
    with FlopCounterMode(display=False) as backward:
        (output.sum() + sum(s.sum() for s in (state if isinstance(state, tuple) else (state,)))).backward()
    layer_type = REGISTRY[kind]
    tensor = Tensor((steps, features), Placement(0 if params["batch_first"] else 1))
    results = [output, *(state if isinstance(state, tuple) else (state,))]
    for returns, result in zip(("output", "h_n", "c_n"), results, strict=False):
        outcome = layer_type.apply_tensors([tensor], {**params, "returns": returns})
        assert outcome.placement.full(outcome.shape, batch) == tuple(result.shape), returns
    outcome = layer_type.apply_tensors([tensor], params)
    assert outcome.weights + outcome.biases == sum(p.numel() for p in module.parameters())
    assert layer_type.parameter_shapes([tensor.shape], params) == tuple(tuple(p.shape) for p in module.parameters())
    assert 2 * batch * outcome.macs == forward.get_total_flops()
    # backward: every weight's gradient, the first layer's input gradient when asked, dh through the steps
    expected = outcome.macs + outcome.inner_grad_macs + (outcome.input_grad_macs if input_grad else 0)
    assert 2 * batch * expected == backward.get_total_flops()


# ------------------------------------------------------------------ memory: what autograd saves

@pytest.mark.needs_torch
@pytest.mark.filterwarnings("ignore::UserWarning")  # oneDNN's TF32 note when its flags are set
@pytest.mark.parametrize("layer", [
    "{type: lstm, hidden: 7, layers: 2, bidirectional: true, batch_first: true, dropout: 0.5}",
    "{type: lstm, hidden: 7, proj_size: 3, batch_first: true, returns: c_n}",
    "{type: gru, hidden: 7, layers: 2, bias: false, batch_first: true}",
    "{type: rnn, hidden: 7, bidirectional: true, nonlinearity: relu, batch_first: true, returns: h_n}",
    "{type: gru, hidden: 7, bidirectional: true}",  # [T, B, F]: its input is a permuted copy's view
])
def test_saved_activations_match_atens_native_kernel(layer: str) -> None:
    """ATen's native kernel (GRU and RNN on the CPU; LSTM with oneDNN off): the tensors the memory model lists."""
    import torch

    from convaudit.core.memory import training_memory
    from convaudit.pytorch.builder import build_model
    from tests.torch_oracles import saved_activation_bytes

    moved = "" if "batch_first" in layer else "  - {type: permute, order: [1, 0], batch: 1}\n"
    spec = f"name: t\ninput: [4, 5]\nlayers:\n  - {{type: linear, out: 6, flatten: false}}\n{moved}  - {layer}\n"
    report = analyze(parse_text(spec, "t.yaml"), batch=3)
    torch.manual_seed(0)
    model = build_model(report).train()
    with torch.backends.mkldnn.flags(enabled=False):
        assert training_memory(report).saved_activations == saved_activation_bytes(model, torch.randn(3, 4, 5))


@pytest.mark.needs_torch
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind, extra", [("lstm", ""), ("lstm", ", proj_size: 3"), ("gru", ""), ("rnn", "")])
def test_output_dtype_under_autocast_is_pytorchs(kind: str, extra: str) -> None:
    """After a linear (a half input) and on the network's fp32 input: GRU's zero state follows its input's dtype."""
    import torch

    from convaudit.core.memory import autocast_itemsizes
    from convaudit.pytorch.builder import build_model

    layer = f"  - {{type: {kind}, name: r, hidden: 7, batch_first: true{extra}}}\n"
    for before in ("  - {type: linear, out: 5, flatten: false}\n", ""):
        report = analyze(parse_text(f"name: t\ninput: [4, 5]\nlayers:\n{before}{layer}", "t.yaml"), batch=2)
        model, made = build_model(report), {}
        model.module_for("r").register_forward_hook(lambda module, args, out, made=made: made.update(r=out.dtype))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(torch.randn(2, 4, 5))
        assert autocast_itemsizes(report)["r"] == made["r"].itemsize, (kind, extra, before)


# ------------------------------------------------------------------ importing models that call them

@pytest.mark.needs_torch
@pytest.mark.filterwarnings("ignore::UserWarning")  # "LSTM with projections is not supported with oneDNN"
@pytest.mark.parametrize("kind, args", [
    ("LSTM", {"bidirectional": True, "num_layers": 2, "proj_size": 5}),
    ("GRU", {"classify": True, "num_layers": 2}),
    ("RNN", {"nonlinearity": "relu", "bias": False}),
])
def test_import_reads_one_layer_per_call(kind: str, args: dict) -> None:
    import torch

    from convaudit.importers import read, spec_of
    from convaudit.pytorch.against import verify_against
    from tests.import_models import Recurrent

    target = "tests.import_models:Recurrent"
    imported = read(target, {"kind": kind, **args}, input_shape=(9, 6))
    type_name = kind.lower()
    recurrent = [layer for layer in imported.layers if layer.type == type_name]
    assert len(recurrent) == 1 and recurrent[0].params.get("returns", "output") == \
        ("h_n" if args.get("classify") else "output")
    report = analyze(spec_of(imported))
    model = Recurrent(kind, **args)
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    with torch.device("meta"):
        meta = Recurrent(kind, **args)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, 9, 6, device="meta"))
    assert report.totals.flops == counter.get_total_flops()
    result = verify_against(report, target, {"kind": kind, **args}, torch.device("cpu"), repeats=0,
                            imported=imported)
    assert result.passed, result.totals


@pytest.mark.needs_torch
@pytest.mark.parametrize("how, named", [
    ("state", "aten.gru.input ×1 (an initial state (hx) the model computes or learns"),
    ("both", "the model reads output and h_n of one call"),
    ("packed", "aten.lstm.data in module 'rnn': a PackedSequence"),
])
def test_what_the_layers_do_not_model_is_refused_and_named(how: str, named: str) -> None:
    from convaudit.errors import ConvauditError
    from convaudit.importers import read

    with pytest.raises(ConvauditError) as refused:
        read("tests.import_models:RecurrentMisuse", {"how": how}, input_shape=(9, 6))
    assert named in str(refused.value)
