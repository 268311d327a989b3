"""Tensor operators and batch placement: golden arithmetic, and random tensor programs imported and compared with
PyTorch (shapes from the trace, parameters from numel, MACs from FlopCounterMode)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convaudit.core.analysis import analyze
from convaudit.spec.parser import parse_text


def network(input_shape: str, *layers: str, outputs: str = "") -> str:
    listed = f"outputs: [{outputs}]\n" if outputs else ""
    return f"name: t\ninput: {input_shape}\n{listed}layers:\n" + "".join(f"  - {layer}\n" for layer in layers)


def analysed(input_shape: str, *layers: str, outputs: str = ""):
    report = analyze(parse_text(network(input_shape, *layers, outputs=outputs), "t.yaml"))
    assert report.halted is None, report.halted and report.halted.problem.message
    return report


# ------------------------------------------------------------------ golden arithmetic

def test_matmul_broadcasts_leading_dimensions_and_counts_n_k_m() -> None:
    # [4, 16, 8] @ a [8, 5] parameter: 4·16·8·5 = 2,560 MACs; the weight's 8·5 = 40 elements are weights
    report = analysed("[4, 16, 8]", "{type: matmul, weight: [8, 5]}")
    layer = report.layers[0]
    assert layer.output_shape == (4, 16, 5)
    assert (layer.macs, layer.weights) == (4 * 16 * 8 * 5, 8 * 5)


def test_vit_attention_moves_the_batch_and_back() -> None:
    # qkv.reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4): [3, B, h, N, d]; q = [B, h, N, d] after select 0
    report = analysed(
        "[16, 48]",
        "{type: linear, name: qkv, out: 144, flatten: false}",
        "{type: reshape, shape: [16, 3, 4, 12]}",
        "{type: permute, name: qkvp, order: [1, 2, 0, 3], batch: 1}",
        "{type: select, name: q, dim: 0, index: 0, from: qkvp}",
        "{type: select, name: k, dim: 0, index: 1, from: qkvp}",
        "{type: select, name: v, dim: 0, index: 2, from: qkvp}",
        "{type: sdpa, name: attn, from: [q, k, v]}")
    qkvp, q, attn = report.layer("qkvp"), report.layer("q"), report.layer("attn")
    assert (qkvp.output_shape, qkvp.outcome.placement.dim) == ((3, 4, 16, 12), 1)
    assert (q.output_shape, q.outcome.placement.dim) == ((4, 16, 12), 0)
    # sdpa: heads·(L·S·E + L·S·Ev) = 4·(16·16·12 + 16·16·12) = 24,576 MACs
    assert attn.macs == 4 * (16 * 16 * 12 + 16 * 16 * 12)
    # other ops: per head, L·E to scale Q and L·(3·S − 1) for the softmax: 4·(16·12 + 16·47)
    assert attn.other_ops == 4 * (16 * 12 + 16 * (3 * 16 - 1))


def test_a_window_partition_folds_the_batch() -> None:
    # Swin: [H, W, C] = [8, 8, 3] into 2×2 windows of 4×4: view(B, 2, 4, 2, 4, C).permute(0, 1, 3, 2, 4, 5)
    # .reshape(-1, 16, C): B·4 windows of 16 tokens
    report = analysed(
        "[8, 8, 3]",
        "{type: reshape, shape: [2, 4, 2, 4, 3]}",
        "{type: permute, order: [0, 2, 1, 3, 4]}",
        "{type: reshape, name: windows, shape: [4, 16, 3], fold: true}",
        "{type: linear, out: 6, flatten: false}",
        "{type: reshape, shape: [2, 2, 4, 4, 6]}")
    windows = report.layer("windows")
    assert windows.outcome.placement.describe(windows.output_shape) == "B·4×16×3"
    assert report.layers[-2].macs == 4 * 16 * 3 * 6  # per sample: 4 windows · 16 tokens · 3 · 6
    assert report.layers[-1].outcome.placement.dim == 0


def test_pointwise_reduce_and_norms_count_their_stated_rules() -> None:
    report = analysed(
        "[8, 4, 4]",
        "{type: pointwise, name: scaled, op: mul, ops: 1, weight: [8, 1, 1]}",
        "{type: reduce, name: total, op: sum, dims: [1, 2], keepdim: true}",
        "{type: groupnorm, name: gn, groups: 2, from: scaled}",
        "{type: rmsnorm, name: rms, from: scaled}", outputs="total, gn, rms")
    scaled, total, gn, rms = (report.layer(n) for n in ("scaled", "total", "gn", "rms"))
    assert (scaled.other_ops, scaled.weights) == (8 * 4 * 4, 8)
    assert (total.output_shape, total.other_ops) == ((8, 1, 1), 8 * 4 * 4)  # one op per input element read
    assert gn.other_ops == 2 * (4 * 64 + 2) + 2 * 128  # 2 groups of N = 64: 4·N + 2 each, then 2 per element
    assert rms.other_ops == 32 * (3 * 4 + 2 + 4)  # 32 vectors of N = 4: 3·N + 2, plus N with affine


def test_slice_with_a_step_expand_and_copy() -> None:
    report = analysed(
        "[4, 10]",
        "{type: slice, name: odd, dim: 1, start: 1, end: 10, step: 2}",
        "{type: reshape, shape: [4, 1, 5]}",
        "{type: expand, shape: [4, 3, 5]}",
        "{type: copy, always: true}")
    assert report.layer("odd").output_shape == (4, 5)  # ⌈(10 − 1)/2⌉ = 5
    assert report.layers[-1].output_shape == (4, 3, 5)


# ------------------------------------------------------------------ random tensor programs against PyTorch

def _program(draw: st.DrawFn) -> tuple[object, tuple[int, ...]]:
    import torch
    from torch import nn

    tokens, dim, heads = draw(st.integers(2, 6)), draw(st.sampled_from([4, 8])), draw(st.sampled_from([1, 2]))
    steps = draw(st.lists(st.sampled_from(["attn", "mlp", "scale", "mean", "stackcat", "slice", "transpose"]),
                          min_size=1, max_size=4))

    class Program(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.up, self.down = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
            self.gamma = nn.Parameter(torch.ones(dim))
            self.norm = nn.LayerNorm(dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch = x.shape[0]
            for step in steps:
                if step == "attn":
                    qkv = self.qkv(x).reshape(batch, tokens, 3, heads, dim // heads)
                    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
                    x = x + self.proj(nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2)
                                      .reshape(batch, tokens, dim))
                elif step == "mlp":
                    x = x + self.down(nn.functional.gelu(self.up(self.norm(x))))
                elif step == "scale":
                    x = x * self.gamma / 2
                elif step == "mean":
                    x = x - x.mean(dim=-1, keepdim=True)
                elif step == "stackcat":
                    x = torch.cat([x, x * 2], dim=1)[:, ::2]
                elif step == "slice":
                    x = x[:, :, : dim // 2].repeat(1, 1, 2) if dim % 2 == 0 else x
                elif step == "transpose":
                    x = (x.transpose(1, 2) @ x).softmax(-1) @ x.transpose(1, 2)
                    x = x.transpose(1, 2)
            return x

    return Program(), (tokens, dim)


@st.composite
def programs(draw: st.DrawFn):
    return _program(draw)


@pytest.mark.needs_torch
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_tensor_programs_import_exactly(program) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convaudit.importers import read_model, spec_of
    from convaudit.pytorch.verify import counted_by_torch

    model, shape = program
    imported = read_model(model, shape, "program")
    report = analyze(spec_of(imported))  # every layer's shape and parameters checked against the trace
    used = sum(p.numel() for name, p in model.named_parameters()
               if not any(name == path or name.startswith(f"{path}.") for path in imported.unused))
    assert report.totals.params == used  # the parameters of modules the forward never calls are named apart
    # FlopCounterMode on the meta device, where scaled_dot_product_attention runs its math decomposition (two
    # bmm it counts); on the CPU its flash kernel has no formula in FlopCounterMode and would count nothing
    meta = copy.deepcopy(model).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(torch.empty(1, *shape, device="meta"))
    assert sum(layer.macs for layer in report.layers if counted_by_torch(layer)) == counter.get_total_flops() // 2


@pytest.mark.needs_torch
def test_adaptive_max_pooling_to_more_than_one_position() -> None:
    import torch
    from torch import nn

    from convaudit.importers import read_model, spec_of
    from convaudit.pytorch.builder import build_model

    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveMaxPool2d((2, 3)))
    spec = spec_of(read_model(model, (3, 5, 7)))
    (pool,) = [layer for layer in analyze(spec).layers if layer.type == "adaptivemaxpool"]
    assert pool.output_shape == (4, 2, 3)
    # PyTorch's windows: rows [0, 3) and [2, 5) of 5; columns [0, 3), [2, 5), [4, 7) of 7: 3·3 = 9 reads each,
    # so 8 comparisons per output, 4·2·3 outputs
    assert pool.other_ops == 8 * 4 * 2 * 3
    built = build_model(analyze(spec)).eval()
    assert tuple(built(torch.zeros(1, 3, 5, 7)).shape) == (1, 4, 2, 3)


class _Einsum:
    """A model of one einsum: the input against a parameter (`weight` given) or against a linear map of itself."""

    @staticmethod
    def make(equation: str, weight: tuple[int, ...] | None, other: int | None):
        import torch
        from torch import nn

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.table = nn.Parameter(torch.randn(weight)) if weight is not None else None
                self.proj = nn.Linear(other, other) if other is not None else None

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                right = self.table if self.table is not None else self.proj(x)
                return torch.einsum(equation, x, right)

        return Model().eval()


@pytest.mark.needs_torch
def test_einsum_counts_every_index_once() -> None:
    from convaudit.importers import read_model, spec_of

    # MViTv2's relative positions: x [B, 4, 5, 6] (b h w c) against a table [4, 7, 6] (h k c): each of the
    # 4·5·7 outputs sums 6 products: 4·5·6·7 = 840 MACs per sample; the table's 168 elements are weights
    report = analyze(spec_of(read_model(_Einsum.make("bhwc,hkc->bhwk", (4, 7, 6), None), (4, 5, 6))))
    (layer,) = [layer for layer in report.layers if layer.type == "einsum"]
    assert layer.output_shape == (4, 5, 7) and layer.macs == 4 * 5 * 6 * 7 and layer.weights == 4 * 7 * 6
    import torch

    from convaudit.pytorch.builder import build_model

    built = build_model(report).eval()  # what verify and bench run
    assert tuple(built(torch.zeros(2, 4, 5, 6)).shape) == (2, 4, 5, 7)
    assert sum(p.numel() for p in built.parameters()) == report.totals.params


EQUATIONS = (("bij,bjk->bik", "activation"), ("bnc,bmc->bnm", "activation"), ("bhwc,hkc->bhwk", "table"),
             ("bnc,cd->bnd", "table"), ("bnc,bnc->bn", "activation"))


@pytest.mark.needs_torch
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# sizes from 2: torch runs a contraction over a size-1 index as a multiply, which FlopCounterMode does not count
@given(st.sampled_from(EQUATIONS), st.lists(st.integers(2, 5), min_size=4, max_size=4))
def test_random_einsums_match_torch(case, sizes) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convaudit.importers import read_model, spec_of
    from convaudit.pytorch.verify import counted_by_torch

    equation, kind = case
    left, right, _ = equation.replace("->", ",").split(",")
    # a table: every index its own size; the input against a linear map of itself: one size, so the shapes agree
    size = dict(zip("ijknmchwd", [*sizes, *sizes, sizes[0]], strict=False)) if kind == "table" else \
        dict.fromkeys("ijknmchwd", sizes[0])
    sample = tuple(size[letter] for letter in left[1:])
    if kind == "table":
        model = _Einsum.make(equation, tuple(size[letter] for letter in right), None)
    else:
        model = _Einsum.make(equation, None, sample[-1])
    report = analyze(spec_of(read_model(model, sample)))
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(torch.zeros(1, *sample))
    assert report.layers[-1].output_shape == tuple(out.shape[1:])
    assert sum(layer.macs for layer in report.layers if counted_by_torch(layer)) == counter.get_total_flops() // 2


@pytest.mark.needs_torch
def test_attention_written_as_sdpa_reads_every_patch() -> None:
    import torch
    from torch import nn

    from convaudit.core.receptive import receptive_fields
    from convaudit.importers import read_model, spec_of

    class Tiny(nn.Module):  # 4×4 patches of a 16×16 image, a class token, one head of SDPA attention
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 8, 4, stride=4)
            self.cls = nn.Parameter(torch.zeros(1, 1, 8))
            self.qkv = nn.Linear(8, 24)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.patch(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            return nn.functional.scaled_dot_product_attention(q, k, v)[:, 0]

    report = analyze(spec_of(read_model(Tiny().eval(), (3, 16, 16))))
    fields = receptive_fields(report)
    patch = fields[report.layers[0].name]
    assert [axis.rf for axis in patch.axes] == [4, 4]  # one 4×4 patch before attention
    last = fields[report.layers[-1].name]
    # after attention the class token reads every patch: the whole 16×16 image, nothing unseen
    assert [axis.rf for axis in last.axes] == [16, 16] and not any(last.uncovered or ())
