"""importers.trace: every operator a model runs, traced on the meta device, checked against torch on the CPU.

The oracle for shapes is torch itself: the same model run for real on the CPU (small sizes) under a bare
TorchDispatchMode that notes each operator and its output shapes. Module paths, versions and batch
dimensions are checked against what the hand-written modules below do, with the reasoning in comments.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.needs_torch
torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from convaudit.importers.operator_table import Unsupported  # noqa: E402
from convaudit.importers.opgraph import ACTIVATION, CONSTANT, PARAMETER, TensorRef  # noqa: E402
from convaudit.importers.trace import TraceRefused, trace  # noqa: E402


def cpu_ops(model, *shapes):
    """[(overload, output shapes)] of the operators the model's own code calls, run for real on the CPU."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Note(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            outs = out if isinstance(out, (tuple, list)) else (out,)
            seen.append((str(func), [tuple(o.shape) for o in outs if isinstance(o, torch.Tensor)]))
            return out

    torch.manual_seed(0)
    inputs = [torch.randn(1, *shape) for shape in shapes]
    with torch.inference_mode(), Note():
        model.eval()(*inputs)
    return seen


def top_ops(graph):
    return [(n.overload, [graph.tensor(r).shape for r in outputs_of(n)]) for n in graph.top()]


def outputs_of(node):
    return [r for o in node.outputs for r in (o if isinstance(o, list) else [o]) if isinstance(r, TensorRef)]


def node(graph, overload, nth=0):
    return [n for n in graph.nodes if n.overload == overload][nth]


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class UpNet(nn.Module):
    """Conv1d, Conv3d, ConvTranspose2d and interpolate: every output shape from torch's own rules."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.conv1 = nn.Conv1d(1, 4, 9, stride=4)
        self.conv3 = nn.Conv3d(3, 4, (3, 5, 5), stride=(1, 2, 2), padding=(1, 0, 0))
        self.up = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        if self.kind == "1d":
            return self.conv1(x)
        if self.kind == "3d":
            return self.conv3(x)
        y = self.up(x)
        return F.interpolate(y, scale_factor=1.5, mode="bilinear", align_corners=False)


@pytest.mark.parametrize(("model", "shape"), [(ConvNet(), (3, 17, 19)), (UpNet("1d"), (1, 1000)),
                                              (UpNet("3d"), (3, 4, 13, 15)), (UpNet("up"), (3, 7, 9))])
def test_every_operator_and_shape_is_what_the_cpu_runs(model, shape):
    graph = trace(model, shape)
    assert top_ops(graph) == cpu_ops(model, shape)
    assert graph.input_shape == shape and graph.tensor(graph.inputs[0]).shape == (1, *shape)


def test_transposed_convolution_and_interpolation_arrive_with_their_arguments():
    graph = trace(UpNet("up"), (3, 7, 9))
    conv = node(graph, "aten.convolution.default")
    assert conv.args["transposed"] is True and conv.args["output_padding"] == [1, 1]
    # (7 - 1)·2 - 2·1 + 1·(3 - 1) + 1 + 1 = 14 rows, (9 - 1)·2 - 2 + 2 + 1 + 1 = 18 columns; then ×1.5, floored
    assert graph.tensor(outputs_of(conv)[0]).shape == (1, 4, 14, 18)
    up = [n for n in graph.leaves() if n.packet.startswith("upsample")][0]
    assert up.overload == "aten.upsample_bilinear2d.default"
    assert graph.tensor(outputs_of(up)[0]).shape == (1, 4, 21, 27)
    assert up.parent is not None and graph.nodes[up.parent].overload == "aten.upsample_bilinear2d.vec"


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), nn.GELU())
        self.pos_embed = nn.Parameter(torch.zeros(1, 3, 4))

    def forward(self, x):
        x = x + self.pos_embed  # a parameter used outside any submodule
        return self.block(self.block(x))  # the same modules called twice


def test_module_paths_and_call_indices():
    graph = trace(Shared(), (3, 4))
    add = node(graph, "aten.add.Tensor")
    assert [(f.path, f.kind, f.call) for f in add.stack] == [("", "Shared", 0)]
    assert graph.tensor(add.args["other"]).kind == PARAMETER and graph.tensor(add.args["other"]).name == "pos_embed"
    linears = [n for n in graph.top() if n.packet == "linear"]
    assert [[(f.path, f.call) for f in n.stack] for n in linears] == [
        [("", 0), ("block", 0), ("block.0", 0)], [("", 0), ("block", 1), ("block.0", 1)]]
    assert [n.module for n in graph.top() if n.packet == "gelu"] == ["block.1", "block.1"]
    # both calls read the one weight tensor
    assert linears[0].args["weight"] == linears[1].args["weight"]


class InPlace(nn.Module):
    def forward(self, x):
        y = x * 2
        y.relu_()
        y.view(-1).add_(1)  # through a view: y itself changes
        return y + 1


def test_in_place_operators_make_new_versions():
    graph = trace(InPlace(), (3,))
    mul, relu, add_, add = (node(graph, o) for o in ("aten.mul.Tensor", "aten.relu_.default", "aten.add_.Tensor",
                                                      "aten.add.Tensor"))
    y0 = outputs_of(mul)[0].id
    y1 = outputs_of(relu)[0].id  # relu_ wrote y: version 1
    assert relu.args["self"].id == y0 and graph.tensor(y1).version_of == y0 and relu.writes == (y1,)
    # add_ on the view wrote the view and y, which shares its storage: two new versions
    y2 = next(i for i in add_.writes if graph.tensor(i).shape == (1, 3))
    assert graph.tensor(y2).version_of == y1 and len(add_.writes) == 2
    assert add.args["self"].id == y2  # the last reader reads the latest version
    assert {"inplace", "pointwise"} <= add_.tags


class Attention(nn.Module):
    """timm's ViT attention: qkv reshaped and permuted so that the batch moves from dimension 0 to 1."""

    def __init__(self, dim=8, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = F.scaled_dot_product_attention(q, k, v)
        return y.transpose(1, 2).reshape(B, N, C).mean(0)


def test_batch_dimension_through_a_vit_reshape_and_permute():
    graph = trace(Attention(), (5, 8))
    assert graph.batch_known
    permute = node(graph, "aten.permute.default")
    qkv = graph.tensor(outputs_of(permute)[0])
    assert qkv.shape == (3, 1, 2, 5, 4) and qkv.batch_dim == 1 and not qkv.batch_folded
    q = graph.tensor(outputs_of(node(graph, "aten.unbind.int"))[0])
    assert q.shape == (1, 2, 5, 4) and q.batch_dim == 0
    mean = graph.tensor(outputs_of(node(graph, "aten.mean.dim"))[0])
    assert mean.batch_dim is None  # averaged over the batch
    assert graph.tensor(graph.named(PARAMETER)[0].id).batch_dim is None
    assert "shape" in node(graph, "aten.reshape.default").batch_args  # (B, N, 3, 2, 4) changes with B


class Windows(nn.Module):
    """Swin's window partition: (B, H, W, C) -> (B·nW, ws·ws, C), and back."""

    def forward(self, x, ws=2):
        B, H, W, C = x.shape
        w = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)
        w = w * 2
        return w.view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)


def test_batch_folded_into_windows():
    graph = trace(Windows(), (4, 6, 3))
    mul = graph.tensor(outputs_of(node(graph, "aten.mul.Tensor"))[0])
    # nW = (4/2)·(6/2) = 6 windows per sample: dimension 0 is B·6, 6 at batch 1
    assert mul.shape == (6, 4, 3) and mul.batch_dim == 0 and mul.batch_folded
    out = graph.tensor(graph.outputs[0].tensor)
    assert out.shape == (1, 4, 6, 3) and out.batch_dim == 0 and not out.batch_folded


class Segmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        with torch.no_grad():  # grad mode switched inside the forward
            aux = y.sum(1)
        return {"out": y, "aux": [aux, "not a tensor"], "size": 7}


def test_outputs_flatten_dicts_and_lists_and_skip_other_values():
    graph = trace(Segmenter(), (3, 4, 4))
    assert [o.name for o in graph.outputs] == ["out", "aux.0"]
    assert graph.tensor(graph.outputs[1].tensor).shape == (1, 4, 4)


class Head(nn.Module):
    def forward(self, x):
        return torch.nonzero(x > 0)


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 3, 1)
        self.head = Head()

    def forward(self, x):
        return self.head(self.backbone(x))


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(3, 1)

    def forward(self, x):
        if self.gate(x).mean() > 0:  # control flow on a tensor's value
            return x
        return -x


def test_data_dependent_models_are_refused_naming_the_operator_and_module():
    from torch.nn.modules import module as nn_module

    hooks = (len(nn_module._global_forward_hooks), len(nn_module._global_forward_pre_hooks))
    with pytest.raises(TraceRefused) as refused:
        trace(Detector(), (3, 4, 4))
    message = str(refused.value)
    assert "aten.nonzero.default in module 'head'" in message and "\n" not in message
    assert isinstance(refused.value, Unsupported)
    assert [(p.op, p.module) for p in refused.value.problems] == [("aten.nonzero.default", "head")]
    with pytest.raises(TraceRefused, match=r"aten\._local_scalar_dense\.default in the model's own forward"):
        trace(Branchy(), (3,))
    assert (len(nn_module._global_forward_hooks), len(nn_module._global_forward_pre_hooks)) == hooks


@pytest.fixture(scope="module")
def cpu_only_ops():
    """Two operators with a CPU kernel and no meta kernel: one element-wise, one not."""
    library = torch.library.Library("convaudit_trace_test", "DEF")
    library.define("twice(Tensor x) -> Tensor", tags=(torch.Tag.pointwise,))
    library.define("head3(Tensor x) -> Tensor")
    library.impl("twice", lambda x: x * 2, "CPU")
    library.impl("head3", lambda x: x[:3].clone(), "CPU")
    yield torch.ops.convaudit_trace_test
    library._destroy()


def test_operators_without_a_meta_kernel(cpu_only_ops):
    class Twice(nn.Module):
        def forward(self, x):
            return cpu_only_ops.twice(x) + 1

    graph = trace(Twice(), (5,))  # element-wise: the output has the input's shape
    assert "no_meta_kernel" in node(graph, "convaudit_trace_test.twice.default").tags
    assert graph.tensor(graph.outputs[0].tensor).shape == (1, 5)

    class Head3(nn.Module):
        def forward(self, x):
            return cpu_only_ops.head3(x)

    with pytest.raises(TraceRefused, match="head3.default in the model's own forward: has no meta kernel"):
        trace(Head3(), (5,))


def test_a_model_with_real_weights_is_traced_on_meta_and_left_as_it_was():
    model = ConvNet().train()
    model.bn.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = trace(model, (3, 8, 8))
    assert model.training and not model.bn.training and model.fc.training
    assert all(torch.equal(before[k], v) and v.device.type == "cpu" for k, v in model.state_dict().items())
    assert {t.name for t in graph.named(PARAMETER)} == {n for n, _ in model.named_parameters()}
    assert node(graph, "aten.addmm.default").parent is not None  # the eval graph, decomposed linear


class Caching(nn.Module):
    """Caches on itself in eval, as TinyViT (a dict) and ConViT (an attribute) do."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(3))
        self.cache = {}
        self.index = None

    def forward(self, x):
        if "bias" not in self.cache:
            self.cache["bias"] = self.bias * 2
        if self.index is None:
            self.index = torch.arange(3)
        return x + self.cache["bias"][self.index]


def test_what_a_forward_caches_on_the_model_is_undone():
    model = Caching()
    graph = trace(model, (3,))
    assert model.cache == {} and model.index is None and model.training
    assert graph.batch_known and not graph.batch_unknown  # both runs computed the cache alike


def test_tied_weights_small_constants_and_several_inputs():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)
            self.b = nn.Linear(4, 4, bias=False)
            self.b.weight = self.a.weight

        def forward(self, x, y):
            size = torch.tensor(x.shape[-1:])  # shape arithmetic with tensors, as detection transforms do
            scale = int((size * 2).item())
            return self.b(self.a(x + y)).repeat(1, scale)

    graph = trace(Tied(), [(4,), (4,)])  # on the CPU: Module.to("meta") would untie the weights
    assert graph.inputs == (0, 1) and graph.input_shapes == ((4,), (4,))
    assert graph.tied == {"b.weight": "a.weight"}
    assert graph.tensor(graph.outputs[0].tensor).shape == (1, 32)  # repeat 4·2 times
    lift = node(graph, "aten.lift_fresh.default")
    assert graph.tensor(outputs_of(lift)[0]).kind == CONSTANT


def test_composite_operators_carry_their_parts_and_the_leaves_are_autograds():
    model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Dropout(0.1))
    graph = trace(model, (3, 4))
    linear = node(graph, "aten.linear.default")
    assert [graph.nodes[i].packet for i in graph.children()[linear.index]] == ["view", "t", "addmm", "view"]
    assert outputs_of(linear) == outputs_of(graph.nodes[graph.children()[linear.index][-1]])
    assert "returns_input" in node(graph, "aten.dropout.default").tags  # eval: no tensor made
    flat = trace(model, (3, 4), level="aten")
    leaves = [n.overload for n in graph.leaves() if "returns_input" not in n.tags]
    assert leaves == [n.overload for n in flat.nodes]
    assert all(t.kind in (ACTIVATION, CONSTANT) for t in graph.tensors if t.producer is not None)


def test_remembered_meta_answers_are_the_kernels_answers(monkeypatch):
    from convaudit.importers.metacache import MetaCache

    block = lambda: nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),  # noqa: E731
                                  nn.Flatten(2), nn.LayerNorm(36), nn.Softmax(-1), nn.Unflatten(2, (6, 6)))
    model = nn.Sequential(*(block() for _ in range(3)))
    hits = []
    original = MetaCache.run

    def counting(self, func, args, kwargs):
        out = original(self, func, args, kwargs)
        hits.append(self.hits)
        return out

    monkeypatch.setattr(MetaCache, "run", counting)
    cached = trace(model, (4, 6, 6))
    assert hits[-1] > 0  # blocks 2 and 3 repeat block 1's calls
    monkeypatch.setattr(MetaCache, "run", lambda self, func, args, kwargs: func(*args, **kwargs))
    fresh = trace(model, (4, 6, 6))
    assert [(n.overload, n.outputs) for n in cached.nodes] == [(n.overload, n.outputs) for n in fresh.nodes]
    assert cached.tensors == tuple(t.__class__(**{**_fields(t), "storage": c.storage})
                                   for t, c in zip(fresh.tensors, cached.tensors, strict=True))


def _fields(record):
    return {name: getattr(record, name) for name in record.__slots__}


# ------------------------------------------------------------------ a model's own input shape


def test_default_input_shapes_from_torchvision_weights():
    from convaudit.importers.defaults import default_input_shape, positional_inputs
    from convaudit.importers.targets import load_torchvision, on_meta

    torchvision = load_torchvision()
    # no model needed: the DEFAULT weights' transforms and docs say it
    assert default_input_shape(None, "torchvision:resnet50") == (3, 224, 224)
    assert default_input_shape(None, "torchvision:inception_v3") == (3, 299, 299)
    assert default_input_shape(None, "torchvision:efficientnet_b7") == (3, 600, 600)
    assert default_input_shape(None, "torchvision:r3d_18") == (3, 16, 112, 112)  # clip_len=16, crop 112
    assert default_input_shape(None, "torchvision:swin3d_t") == (3, 32, 224, 224)
    assert default_input_shape(None, "torchvision:fcn_resnet50") == (3, 520, 520)
    ssd = on_meta(lambda: torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=None,
                                                       weights_backbone=None))
    assert default_input_shape(ssd, "torchvision:ssdlite320_mobilenet_v3_large") == (3, 320, 320)
    raft = on_meta(lambda: torchvision.models.get_model("raft_small", weights=None))
    assert default_input_shape(raft, "torchvision:raft_small") == (3, 520, 960) and positional_inputs(raft) == 2
    vit = on_meta(lambda: torchvision.models.get_model("vit_b_32", weights=None, image_size=96))
    assert default_input_shape(vit) == (3, 96, 96)  # its image_size attribute, without a target
    assert default_input_shape(ConvNet()) is None and positional_inputs(ConvNet()) == 1


def test_a_timm_model_at_its_own_size():
    timm = pytest.importorskip("timm")
    from convaudit.importers.defaults import default_input_shape
    from convaudit.importers.targets import on_meta

    model = on_meta(lambda: timm.create_model("swinv2_tiny_window8_256", pretrained=False))
    assert default_input_shape(model) == (3, 256, 256)  # pretrained_cfg["input_size"]
    graph = trace(model, default_input_shape(model))
    # its windows: 256/4 = 64 patches a side, 8×8 windows, so (B·64, 64, 96) in the first stage
    assert any(t.batch_folded and t.shape == (64, 64, 96) for t in graph.tensors)
    assert {t.name for t in graph.named(PARAMETER)} == {n for n, _ in model.named_parameters()}
