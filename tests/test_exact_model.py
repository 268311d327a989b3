"""The one-pass exact-input model (core/checks/exact.py) against brute force: a full analysis at every size.

Random encoder-decoders: random depths, kernels, paddings, dilations, down-sampling (max/avg pool, strided conv,
pixel unshuffle), up-sampling (transposed convs of several shapes, nearest ×2, pixel shuffle), pads, and skips
joined by concat, add or crop-and-concat, in 1-D, 2-D and 3-D."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convaudit.core.analysis import analyze
from convaudit.core.checks import ExactModel, _verdict
from convaudit.core.checks.exact import Affine, Inputs, searched_groups
from convaudit.spec.parser import parse_text

# ------------------------------------------------------------------ the residue classes, against their definition

fractions = st.builds(Fraction, st.integers(-24, 24), st.sampled_from([1, 2, 3, 4, 6, 8]))
forms = st.builds(Affine, fractions, st.builds(lambda f: f * 5, fractions))
operations = st.lists(st.tuples(st.sampled_from(["integral", "at_least", "equal"]), forms, forms,
                                st.integers(-10, 10)), max_size=4)


@given(operations)
@settings(max_examples=150, deadline=None)
def test_input_sets_hold_exactly_the_sizes_that_satisfy_every_condition(steps) -> None:
    inputs: Inputs | None = Inputs()
    conditions = []
    for kind, first, second, bound in steps:
        if inputs is None:
            break
        if kind == "integral":
            inputs = inputs.integral(first)
            conditions.append(lambda x, f=first: f.at(x).denominator == 1)
        elif kind == "at_least":
            inputs = inputs.at_least(first, bound)
            conditions.append(lambda x, f=first, b=bound: f.at(x) >= b)
        else:
            inputs = inputs.equal(first, second)
            conditions.append(lambda x, f=first, g=second: f.at(x) == g.at(x))
    members = [x for x in range(1, 200) if all(condition(x) for condition in conditions)]
    if inputs is None:
        assert members == []
    else:
        assert [x for x in range(1, 200) if x in inputs] == members
        if members:
            assert inputs.first_from(members[0]) == members[0] and inputs.last_to(members[-1]) == members[-1]


def test_a_window_after_an_up_sampling_divides_on_a_finer_class() -> None:
    # x/4 (two halvings), then ×3/2: whole where 8 divides x; then (·)/3 whole where 24 divides x.
    inputs = Inputs().integral(Affine(Fraction(1, 4), Fraction(0)))
    assert (inputs.residue, inputs.modulus) == (0, 4)
    inputs = inputs.integral(Affine(Fraction(3, 8), Fraction(0)))
    assert (inputs.residue, inputs.modulus) == (0, 8)
    inputs = inputs.integral(Affine(Fraction(1, 8), Fraction(-1, 2)))  # (3x/8 − 3/2)/3: x ≡ 4 (mod 8)
    assert inputs is None  # x ≡ 0 (mod 8) and x ≡ 4 (mod 8) never meet


# ------------------------------------------------------------------ random encoder-decoders


@st.composite
def encoder_decoders(draw) -> tuple[str, int]:
    rank = draw(st.sampled_from([1, 2, 2, 3]))
    lines: list[str] = []
    count = [0]

    def layer(text: str, source: str | list[str]) -> str:
        count[0] += 1
        name = f"l{count[0]}"
        sources = source if isinstance(source, list) else [source]
        lines.append(f"  - {{{text}, name: {name}, from: [{', '.join(sources)}]}}")
        return name

    def convs(source: str, most: int) -> str:
        for _ in range(draw(st.integers(0, most))):
            kernel = draw(st.sampled_from([1, 2, 3, 5]))
            dilation = draw(st.sampled_from([1, 1, 2]))
            same = kernel % 2 and draw(st.integers(0, 9)) < 7  # mostly size-keeping, as most U-Nets
            padding = dilation * (kernel - 1) // 2 if same else draw(st.integers(0, kernel // 2))
            source = layer(f"type: conv, out: 4, kernel: {kernel}, padding: {padding}, dilation: {dilation}", source)
        return source

    current = "input"
    skips: list[str] = []
    made: list[str] = ["input"]  # every map so far, for the odd skip from another level
    depth = draw(st.integers(1, 3))
    for _ in range(depth):
        current = convs(current, 2)
        skips.append(current)
        made.append(current)
        down = draw(st.sampled_from(["maxpool", "avgpool", "conv"] + (["unshuffle"] if rank == 2 else [])))
        if down == "maxpool":
            current = layer("type: maxpool, kernel: 2", current)
        elif down == "avgpool":
            current = layer("type: avgpool, kernel: 3, stride: 2, padding: 1", current)
        elif down == "conv":
            current = layer("type: conv, out: 4, kernel: 3, stride: 2, padding: 1", current)
        else:
            current = layer("type: conv, out: 4, kernel: 1", layer("type: pixelunshuffle, factor: 2", current))
    current = convs(current, 2)
    for skip in reversed(skips):
        up = draw(st.sampled_from(["t2", "t3", "t4", "nearest"] + (["shuffle"] if rank == 2 else [])))
        if up == "t2":
            current = layer("type: convtranspose, out: 4, kernel: 2, stride: 2", current)
        elif up == "t3":
            extra = draw(st.integers(0, 1))
            current = layer(f"type: convtranspose, out: 4, kernel: 3, stride: 2, padding: 1, output_padding: {extra}",
                            current)
        elif up == "t4":
            current = layer("type: convtranspose, out: 4, kernel: 4, stride: 2, padding: 1", current)
        elif up == "nearest":
            current = layer("type: upsample, scale: 2", current)
        else:
            current = layer("type: pixelshuffle, factor: 2", layer("type: conv, out: 16, kernel: 1", current))
            current = layer("type: conv, out: 4, kernel: 1", current)
        if draw(st.integers(0, 4)) == 0:
            before, after = draw(st.integers(0, 2)), draw(st.integers(0, 2))
            current = layer(f"type: pad, before: {before}, after: {after}", current)
        if draw(st.integers(0, 4)) == 0:  # a skip from another level: sizes agree at one input at most
            skip = draw(st.sampled_from(made))
        join = draw(st.sampled_from(["concat", "add", "crop", "crop"]))
        if join == "crop":
            current = layer("type: concat", [layer("type: crop", [skip, current]), current])
        else:
            current = layer(f"type: {join}", [skip, current])
        current = convs(current, 1)
    layer("type: conv, out: 2, kernel: 1", current)
    depth_size = draw(st.sampled_from([8, 12, 16, 17]))
    spatial = {1: "{x}", 2: "{x}, {x}", 3: f"{depth_size}, {{x}}, {{x}}"}[rank]
    text = "name: random\ninput: [4, " + spatial + "]\nlayers:\n" + "\n".join(lines) + "\n"
    return text, draw(st.integers(24, 72))


@given(encoder_decoders())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_model_agrees_with_brute_force_on_random_encoder_decoders(case) -> None:
    template, start = case
    spec = parse_text(template.replace("{x}", str(start)), "random.yaml")
    spatial = spec.input[1:]
    for axes in searched_groups(spatial):
        model = ExactModel.of(analyze(spec), axes)
        assert model is not None, template  # every kind generated here is modelled
        for size in range(1, 2 * start):
            sizes = tuple(size if index in axes else old for index, old in enumerate(spatial))
            assert model.verdict(size) == _verdict(spec, *sizes, axes=axes), (template, axes, size)


def test_branches_of_different_slopes_meet_at_one_input_only() -> None:
    text = """\
name: t
input: [1, 38, 38]
layers:
  - {type: maxpool, name: half, kernel: 2}
  - {type: pad, name: wide, before: 10, after: 10}
  - {type: concat, name: cat, from: [input, wide]}
"""
    spec = parse_text(text, "t.yaml")
    model = ExactModel.of(analyze(spec), (0, 1))
    # input x against x/2 + 20 (x even): equal at x = 40 only.
    assert [x for x in range(1, 200) if model.verdict(x) is not None] == [40]
    assert [x for x in range(1, 200) if _verdict(spec, x, x) is not None] == [40]
    from convaudit.core.checks import check

    (finding,) = check(analyze(spec))
    assert finding.layer == "cat"
    assert "nearest inputs where every layer divides exactly and every merge matches: 40×40 (+2)" in finding.suggestions
