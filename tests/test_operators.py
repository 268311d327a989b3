"""The operators of modern CNNs and ViT: golden numbers with the arithmetic written out, clear errors for bad
hyper-parameters and shapes, and a property test against PyTorch on random small networks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.analysis import analyze
from convaudit.core.layers import REGISTRY
from convaudit.core.memory import training_memory
from convaudit.errors import SpecError
from convaudit.spec.parser import parse_text

NEW_TYPES = ("gelu", "silu", "swish", "relu6", "hardswish", "hardsigmoid", "mul", "scale", "layernorm", "slice",
             "shuffle", "permute", "reshape", "classtoken", "posembedding", "attention", "select")


def net(input_shape: list[int], *layers: str, batch: int = 1):
    """Analyse a chain given as YAML flow mappings."""
    text = f"name: t\ninput: {input_shape}\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers)
    return analyze(parse_text(text), batch=batch)


def last(report):
    assert report.halted is None, report.halted and report.halted.problem.message
    return report.layers[-1]


def halt_message(report) -> str:
    assert report.halted is not None
    return report.halted.problem.message


def spec_error(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_text(text)
    return str(caught.value)


# A token sequence for the golden tests: [3, 224, 224] → 16×16 patches → [768, 14, 14] → [196, 768].
PATCHES = ("{type: conv, out: 768, kernel: 16, stride: 16}", "{type: reshape, shape: [768, 196]}",
           "{type: permute, order: [1, 0]}")


# ------------------------------------------------------------------ element-wise functions

@pytest.mark.parametrize(("kind", "per_element"), [
    ("gelu", 5),  # x · ½(1 + erf(x/√2)): scale, erf, add 1, halve, multiply
    ("silu", 2),  # x · sigmoid(x): sigmoid, multiply
    ("swish", 2),  # the same function
    ("relu6", 2),  # min(max(0, x), 6): two comparisons
    ("hardsigmoid", 4),  # relu6(x + 3)/6: add, two comparisons, divide
    ("hardswish", 5),  # x · relu6(x + 3)/6: those four and a multiply
])
def test_elementwise_functions_keep_the_shape_and_count_their_steps(kind: str, per_element: int) -> None:
    layer = last(net([16, 8, 8], f"{{type: {kind}}}", batch=2))
    assert layer.output_shape == (16, 8, 8)
    assert layer.params == 0 and layer.macs == 0
    assert layer.other_ops == per_element * 16 * 8 * 8 * 2  # per element × C·H·W × batch 2


def test_squeeze_excite_gate_broadcasts_channels_over_the_map() -> None:
    report = net([24, 14, 14], "{type: relu, name: x}", "{type: globalavgpool}", "{type: conv, out: 24, kernel: 1}",
                 "{type: hardsigmoid, name: gate}", "{type: mul, from: [x, gate]}")
    layer = last(report)
    assert layer.input_shapes == ((24, 14, 14), (24, 1, 1))
    assert layer.output_shape == (24, 14, 14)
    assert layer.macs == 0 and layer.other_ops == 24 * 14 * 14  # one multiply per output element


def test_mul_of_shapes_that_do_not_broadcast_names_both_branches() -> None:
    report = net([8, 4, 4], "{type: relu, name: a}", "{type: globalavgpool, name: b}",
                 "{type: conv, out: 4, kernel: 1, name: c}", "{type: mul, from: [a, c]}")
    message = halt_message(report)
    assert "sizes 4 and 8 do not broadcast" in message and "'a' gives 8×4×4" in message
    assert "'c' gives 4×1×1" in message


def test_layer_scale_is_one_weight_per_channel() -> None:
    # ConvNeXt-T stage 1: a [96, 1, 1] parameter on a [96, 56, 56] map.
    layer = last(net([96, 56, 56], "{type: scale}"))
    assert (layer.weights, layer.biases, layer.trainable_params) == (96, 0, 96)
    assert layer.other_ops == 96 * 56 * 56
    tokens = last(net([3, 224, 224], *PATCHES, "{type: scale, over: last}"))
    assert tokens.weights == 768  # one per feature of [196, 768]


# ------------------------------------------------------------------ layer normalisation

def test_layernorm_over_the_last_dimension_of_vit_tokens() -> None:
    layer = last(net([3, 224, 224], *PATCHES, "{type: layernorm}"))
    assert (layer.weights, layer.biases) == (768, 768)
    # 196 vectors of 768: mean, subtract, square, variance, scale, shift 6·768 and ε + rsqrt 2 each.
    assert layer.other_ops == 196 * (6 * 768 + 2)
    plain = last(net([3, 224, 224], *PATCHES, "{type: layernorm, affine: false}"))
    assert plain.params == 0 and plain.other_ops == 196 * (4 * 768 + 2)


def test_layernorm_over_channels_is_convnexts_layernorm2d() -> None:
    layer = last(net([96, 56, 56], "{type: layernorm, over: channels}"))
    assert layer.output_shape == (96, 56, 56)
    assert (layer.weights, layer.biases) == (96, 96)
    assert layer.other_ops == 56 * 56 * (6 * 96 + 2)  # one vector of 96 channels per position


# ------------------------------------------------------------------ views

def test_shufflenet_chunk_is_two_slices() -> None:
    report = net([116, 28, 28], "{type: relu, name: x}", "{type: slice, name: left, end: 58}",
                 "{type: slice, name: right, start: 58, end: 116, from: x}", "{type: concat, from: [left, right]}",
                 "{type: shuffle, groups: 2}")
    assert report.layer("left").output_shape == report.layer("right").output_shape == (58, 28, 28)
    assert last(report).output_shape == (116, 28, 28)
    assert all(layer.other_ops == layer.params == 0 for layer in report.layers[1:])


def test_views_are_free() -> None:
    report = net([768, 14, 14], "{type: reshape, shape: [768, -1]}", "{type: permute, order: [1, 0]}",
                 "{type: select, index: 5}")
    assert [layer.output_shape for layer in report.layers] == [(768, 196), (196, 768), (768,)]
    assert report.totals.other_ops == report.totals.params == report.totals.macs == 0


@pytest.mark.parametrize(("layers", "expected"), [
    (("{type: slice, start: 2, end: 20}",), "end 20 is past the input's 16 channels"),
    (("{type: shuffle, groups: 3}",), "channels 16 are not divisible by groups 3"),
    (("{type: permute, order: [1, 0]}",), "order [1, 0] has 2 entries but the input [16, 4, 4] has 3 dimensions"),
    (("{type: reshape, shape: [5, -1]}",), "16×4×4 = 256 elements do not divide into [5, -1]"),
    (("{type: reshape, shape: [16, 15]}",), "16×4×4 = 256 elements cannot become 16×15 = 240"),
    (("{type: select, index: 16}",), "index 16 is past the input's 16 entries (0–15)"),
    (("{type: attention, heads: 2}",), "attention needs [N, D] tokens, got [16, 4, 4] (a feature map"),
    (("{type: classtoken}",), "classtoken needs [N, D] tokens"),
    (("{type: reshape, shape: [16, 16]}", "{type: attention, heads: 3}"), "3 heads do not divide D = 16"),
])
def test_bad_shapes_halt_with_a_clear_message(layers: tuple[str, ...], expected: str) -> None:
    assert expected in halt_message(net([16, 4, 4], *layers))


@pytest.mark.parametrize(("layer", "expected"), [
    ("{type: slice, start: 4, end: 4}", "end 4 must be greater than start 4 (end is exclusive)"),
    ("{type: permute, order: [0, 2, 2]}", "order [0, 2, 2] is not a permutation of 0–2"),
    ("{type: permute, order: 1}", "expected a permutation of the sample dimensions such as [1, 2, 0], got 1"),
    ("{type: reshape, shape: [-1, -1]}", "shape [-1, -1] may hold positive sizes and at most one −1"),
    ("{type: reshape, shape: [4, -2]}", "expected a list of positive sizes, at most one −1"),
    ("{type: layernorm, over: width}", "expected one of last, channels, got string 'width'"),
    ("{type: attention}", "attention needs 'heads'"),
])
def test_bad_hyper_parameters_name_file_line_and_key(layer: str, expected: str) -> None:
    message = spec_error(f"name: t\ninput: [16, 4, 4]\nlayers:\n  - {{type: relu}}\n  - {layer}\n")
    assert expected in message
    assert "<spec>:5" in message


# ------------------------------------------------------------------ tokens, attention, the pointwise linear

def test_pointwise_linear_on_a_channels_last_map() -> None:
    # ConvNeXt-T stage 1, pwconv1: nn.Linear(96, 384) on [56, 56, 96].
    layer = last(net([96, 56, 56], "{type: permute, order: [1, 2, 0]}", "{type: linear, out: 384, flatten: false}"))
    assert layer.output_shape == (56, 56, 384)
    assert (layer.weights, layer.biases) == (96 * 384, 384)
    assert layer.macs == 56 * 56 * 96 * 384  # (elements / in)·in·out = 115,605,504
    assert layer.other_ops == 56 * 56 * 384  # a bias add per output element
    flattened = last(net([96, 56, 56], "{type: linear, out: 10}"))
    assert flattened.output_shape == (10,) and flattened.macs == 96 * 56 * 56 * 10  # today's default is kept


def test_class_token_and_position_embedding() -> None:
    report = net([3, 224, 224], *PATCHES, "{type: classtoken}", "{type: posembedding}")
    token, position = report.layers[-2:]
    assert token.output_shape == (197, 768) and token.weights == 768
    assert position.output_shape == (197, 768)
    assert position.weights == 197 * 768 == 151_296 and position.other_ops == 197 * 768


def test_vit_b16_attention_golden() -> None:
    layer = last(net([3, 224, 224], *PATCHES, "{type: classtoken}", "{type: attention, heads: 12}"))
    n, d, heads = 197, 768, 12
    assert layer.output_shape == (n, d)
    assert (layer.weights, layer.biases) == (4 * d * d, 4 * d)  # in-projection 3·D·D + 3·D, out D·D + D
    # 4·197·768² + 2·197²·768 = 464,781,312 + 59,610,624
    assert layer.macs == 4 * n * d * d + 2 * n * n * d == 524_391_936
    # Q scaled: N·D; softmax 3·N − 1 per query per head; bias adds 3·N·D + N·D
    assert layer.other_ops == n * d + heads * n * (3 * n - 1) + 4 * n * d
    # Backward: weight gradients 4·N·D², input gradient 4·N·D² (through the in- and out-projections),
    # and dQ, dK, dA, dV: four N·N·D products. Twice the forward.
    assert layer.backward_macs == 8 * n * d * d + 4 * n * n * d == 2 * layer.macs


def test_attention_as_the_first_trained_layer_still_needs_its_inner_gradients() -> None:
    layer = last(net([16, 4, 4], "{type: reshape, shape: [16, 16]}", "{type: attention, heads: 4, bias: false}"))
    n = d = 16
    # No dx of the in-projection (the input needs none); dW 4·N·D², the out-projection's dx N·D², and 4·N²·D.
    assert layer.backward_macs == 4 * n * d * d + n * d * d + 4 * n * n * d


VIT_B16 = """
name: vit-b-16
input: [3, 224, 224]
blocks:
  encoder:
    layers:
      - {type: layernorm, name: ln_1}
      - {type: attention, name: self_attention, heads: 12}
      - {type: add, name: add1, from: [self_attention, input]}
      - {type: layernorm, name: ln_2}
      - {type: linear, name: fc1, out: 3072, flatten: false}
      - {type: gelu, name: gelu}
      - {type: linear, name: fc2, out: 768, flatten: false}
      - {type: add, name: add2, from: [fc2, add1]}
layers:
  - {type: conv, name: conv_proj, out: 768, kernel: 16, stride: 16}
  - {type: reshape, shape: [768, 196]}
  - {type: permute, order: [1, 0]}
  - {type: classtoken, name: class_token}
  - {type: posembedding, name: pos_embedding}
  - {block: encoder, name: layer, repeat: 12}
  - {type: layernorm, name: ln}
  - {type: select, name: cls}
  - {type: linear, name: head, out: 1000}
"""


def test_vit_b16_totals() -> None:
    totals = analyze(parse_text(VIT_B16)).totals
    # conv 768·3·16·16 + 768 = 590,592; class token 768; position 197·768 = 151,296;
    # per block: two layernorms 2·2·768 = 3,072, attention 4·768² + 4·768 = 2,362,368,
    # MLP 768·3072 + 3072 + 3072·768 + 768 = 4,722,432, so 7,087,872, ×12 = 85,054,464;
    # final layernorm 1,536; head 768·1000 + 1000 = 769,000. torchvision's vit_b_16 states 86,567,656 too.
    assert totals.params == 590_592 + 768 + 151_296 + 12 * 7_087_872 + 1_536 + 769_000 == 86_567_656
    # MACs: conv 768·3·16·16·196 = 115,605,504; per block attention 524,391,936 and MLP 2·197·768·3072 =
    # 929,562,624; head 768,000. torchvision's docs give 17.56 GFLOPS (their FLOPs are MACs).
    assert totals.macs == 115_605_504 + 12 * (524_391_936 + 929_562_624) + 768_000 == 17_563_828_224


# ------------------------------------------------------------------ against PyTorch

EVERY = """
name: every-operator
input: [8, 6, 6]
layers:
  - {type: conv, name: stem, out: 16, kernel: 3, padding: 1}
  - {type: gelu}
  - {type: silu}
  - {type: swish}
  - {type: relu6}
  - {type: hardswish, name: x}
  - {type: globalavgpool}
  - {type: conv, out: 16, kernel: 1}
  - {type: hardsigmoid, name: gate}
  - {type: mul, name: se, from: [x, gate]}
  - {type: scale}
  - {type: layernorm, over: channels}
  - {type: shuffle, groups: 4}
  - {type: slice, start: 4, end: 12}
  - {type: permute, order: [1, 2, 0]}
  - {type: layernorm}
  - {type: linear, out: 12, flatten: false}
  - {type: reshape, shape: [-1, 12]}
  - {type: classtoken}
  - {type: posembedding}
  - {type: attention, heads: 3}
  - {type: scale, over: last}
  - {type: select}
  - {type: linear, out: 5}
"""


def test_every_new_type_is_in_the_registry_and_the_cross_check_spec() -> None:
    assert set(NEW_TYPES) <= set(REGISTRY)
    used = {layer.type for layer in parse_text(EVERY).layers}
    assert set(NEW_TYPES) <= used


@pytest.mark.needs_torch
def test_convaudit_verify_passes_on_every_new_type(write_spec) -> None:
    result = CliRunner().invoke(app, ["verify", str(write_spec(EVERY)), "--repeats", "0", "--batch", "2"],
                                env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    assert "comparable cells match" in result.output


@pytest.mark.needs_torch
def test_vit_b16_forward_flops_from_pytorch_itself() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convaudit.pytorch.builder import build_model

    report = analyze(parse_text(VIT_B16))
    with torch.device("meta"):  # no memory, no arithmetic: FlopCounterMode reads shapes
        model = build_model(report).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, 224, 224))
    assert counter.get_total_flops() == report.totals.flops == 2 * 17_563_828_224


def _torch_oracle(report):
    """What PyTorch says: every layer's output shape and parameter count, forward and backward FLOPs, and the
    bytes autograd saves for backward."""
    import torch
    from torch.autograd.graph import saved_tensors_hooks
    from torch.utils.flop_counter import FlopCounterMode

    from convaudit.pytorch.builder import build_model

    torch.manual_seed(0)
    model = build_model(report).train()
    shapes: dict[str, tuple[int, ...]] = {}
    for _key, name, _sources in model.plan:
        model.module_for(name).register_forward_hook(
            lambda m, a, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
    params = {name: sum(p.numel() for p in model.module_for(name).parameters()) for _k, name, _s in model.plan}
    own = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    x = torch.randn(report.batch, *report.input)
    with FlopCounterMode(display=False) as forward:
        model(x)
    with FlopCounterMode(display=False) as both, saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x).sum().backward()
    return (shapes, params, forward.get_total_flops(), both.get_total_flops() - forward.get_total_flops(),
            sum(saved.values()))


@st.composite
def modern_networks(draw) -> str:
    """A random chain: a conv stem, then operators valid at each shape; maps may turn into tokens and vectors."""
    c = draw(st.sampled_from([4, 6, 8]))
    h, w = draw(st.integers(2, 5)), draw(st.integers(2, 5))
    layers = [f"{{type: conv, name: l0, out: {c}, kernel: 1}}"]
    shape: list[int] = [c, h, w]
    for index in range(1, draw(st.integers(2, 9))):
        name, prev = f"l{index}", f"l{index - 1}"
        rank = len(shape)
        choices = ["gelu", "silu", "relu6", "hardswish", "hardsigmoid", "scale", "layernorm", "linear",
                   "posembedding", "mul"]
        if rank >= 2:
            choices += ["slice", "permute", "reshape", "select"]
        if rank == 3:
            choices += ["shuffle", "gate"]
        if rank == 2:
            choices += ["classtoken", "attention"]
        kind = draw(st.sampled_from(choices))
        if kind in ("gelu", "silu", "relu6", "hardswish", "hardsigmoid", "posembedding"):
            layer = f"{{type: {kind}}}"
        elif kind == "scale":
            over = draw(st.sampled_from(["channels", "last"]))
            layer = f"{{type: scale, over: {over}}}"
        elif kind == "layernorm":
            over = draw(st.sampled_from(["channels", "last"]))
            layer = f"{{type: layernorm, over: {over}, affine: {draw(st.booleans())}}}".lower()
        elif kind == "linear":
            out = draw(st.integers(2, 6))
            layer = f"{{type: linear, out: {out}, flatten: false, bias: {draw(st.booleans())}}}".lower()
            shape = shape[:-1] + [out]
        elif kind == "mul":  # with a sibling branch of the same shape
            layers.append(f"{{type: sigmoid, name: {name}s, from: {prev}}}")
            layer = f"{{type: mul, from: [{prev}, {name}s]}}"
        elif kind == "gate":  # squeeze-excite: [C, H, W] × [C, 1, 1]
            layers.append(f"{{type: globalavgpool, name: {name}p, from: {prev}}}")
            layers.append(f"{{type: hardsigmoid, name: {name}g}}")
            layer = f"{{type: mul, from: [{prev}, {name}g]}}"
        elif kind == "slice":
            start = draw(st.integers(0, shape[0] - 1))
            end = draw(st.integers(start + 1, shape[0]))
            layer = f"{{type: slice, start: {start}, end: {end}}}"
            shape = [end - start] + shape[1:]
        elif kind == "shuffle":
            groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if shape[0] % g == 0]))
            layer = f"{{type: shuffle, groups: {groups}}}"
        elif kind == "permute":
            order = draw(st.permutations(list(range(rank))))
            layer = f"{{type: permute, order: {list(order)}}}"
            shape = [shape[i] for i in order]
        elif kind == "reshape":  # fold the last two dimensions, or split the first
            if rank == 3 or shape[0] % 2:
                target = shape[:-2] + [-1]
                shape = shape[:-2] + [shape[-2] * shape[-1]]
            else:
                target = [2, -1] + shape[1:]
                shape = [2, shape[0] // 2] + shape[1:]
            layer = f"{{type: reshape, shape: {target}}}"
        elif kind == "select":
            layer = f"{{type: select, index: {draw(st.integers(0, shape[0] - 1))}}}"
            shape = shape[1:]
        elif kind == "classtoken":
            layer = "{type: classtoken}"
            shape = [shape[0] + 1, shape[1]]
        else:  # attention
            heads = draw(st.sampled_from([g for g in (1, 2, 3) if shape[1] % g == 0]))
            layer = f"{{type: attention, heads: {heads}, bias: {draw(st.booleans())}}}".lower()
        layers.append(layer[:-1] + f", name: {name}" + ("" if "from:" in layer else f", from: {prev}") + "}")
    text = f"name: random\ninput: [{c}, {h}, {w}]\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers)
    return text


@pytest.mark.needs_torch
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modern_networks(), st.integers(1, 3))
def test_random_modern_networks_match_pytorch(text: str, batch: int) -> None:
    report = analyze(parse_text(text), batch=batch)
    assert report.halted is None, (report.halted.problem.message, text)
    shapes, params, forward, backward, saved = _torch_oracle(report)
    for layer in report.layers:
        assert shapes[layer.name] == layer.output_shape, (layer.name, text)
        assert params[layer.name] == layer.params, (layer.name, text)
    # FlopCounterMode counts 2 per multiply-accumulate of conv, linear and attention's matmuls.
    assert forward == report.totals.flops, text
    assert backward == report.totals.backward_flops, text
    assert saved == training_memory(report).saved_activations, text  # views and copies as PyTorch makes them
