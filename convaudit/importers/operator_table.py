"""The mapping table: each PyTorch (ATen) and ONNX operator to one of convaudit's layer types.

One small entry per operator, as torch's flop_counter registers one function per op. A front end
reads an operator's arguments into plain values (`Call`), and the entry returns what the layer is:
a `Make` (a layer type and its YAML fields), or an `Alias` of an input (views that change nothing,
eval-mode identities). An operator with no entry is refused by the front end, naming the operator and
the module path; nothing is ever counted as zero by omission. Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from convaudit.errors import SpecError


class Unsupported(SpecError):
    """An operator (or a use of one) that convaudit cannot count."""


@dataclass
class Value:
    """What a tensor in the traced graph is: an activation (a layer's output) or a parameter."""

    kind: str  # "act", "param", "const", "parts"
    shape: tuple[int, ...] = ()  # with the batch dimension for activations
    layer: str = ""  # the producing layer ("input" for the network input), for "act"
    names: tuple[str, ...] = ()  # parameter names, for "param"
    numel: int = 0  # parameter elements, for "param"
    parts: tuple[tuple[int, int], ...] = ()  # (start, end) channel ranges of a split, for "parts"
    source: Value | None = None  # the split activation, for "parts"
    constant: Any = None


@dataclass
class Call:
    """One operator call as the table sees it: tensors as Values, attributes as plain Python."""

    op: str
    tensors: list[Value]  # the tensor operands, in the operator's order
    attrs: dict[str, Any]
    out: tuple[int, ...]  # the output's shape, batch included
    where: str  # "module path (op)" for messages


@dataclass
class Make:
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[Value] | None = None  # default: the activation operands
    named_after: str | None = None  # a parameter's name that names this layer (class_token, layer_scale)
    extra: tuple[Make, ...] = ()  # layers that follow it (mean without keepdim: pool, then flatten)


@dataclass
class Alias:
    value: Value


Entry = Callable[[Call], "Make | Alias"]
ATEN: dict[str, Entry] = {}
ONNX: dict[str, Entry] = {}


def _registrar(table: dict[str, Entry]) -> Callable[..., Callable[[Entry], Entry]]:
    """A decorator that files an entry in `table` under each of its operator names."""

    def by_names(*names: str) -> Callable[[Entry], Entry]:
        def register(entry: Entry) -> Entry:
            for name in names:
                table[name] = entry
            return entry

        return register

    return by_names


aten = _registrar(ATEN)
onnx = _registrar(ONNX)


def refuse(call: Call, why: str) -> Unsupported:
    return Unsupported(f"{call.where}: {why}")


def pair(value: Any, default: int | None = None) -> list[int]:
    if value is None or value == []:
        return [default, default] if default is not None else []
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return [int(values[0]), int(values[-1])]


def acts(call: Call) -> list[Value]:
    return [t for t in call.tensors if t.kind == "act"]


def first_act(call: Call) -> Value:
    found = acts(call)
    if not found:
        raise refuse(call, "no input that comes from the network's input")
    return found[0]


def rank(value: Value) -> int:
    return len(value.shape)


def dim(value: int, ranked: int) -> int:
    return value + ranked if value < 0 else value


# ------------------------------------------------------------------ layers with weights

def conv(call: Call, weight: tuple[int, ...], bias: bool, stride: Any, padding: Any, dilation: Any,
         groups: int) -> Make:
    if len(weight) != 4:
        raise refuse(call, f"only 2-D convolutions are counted (weight of rank {len(weight)})")
    kernel = [weight[2], weight[3]]
    dilation = pair(dilation, 1)
    if isinstance(padding, str):  # conv2d(padding='same' / 'valid')
        if padding == "valid":
            padding = [0, 0]
        else:
            spans = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
            if any(span % 2 for span in spans):
                raise refuse(call, "padding='same' with an even kernel pads unevenly; convaudit pads symmetrically")
            padding = [span // 2 for span in spans]
    return Make("conv", {"out": weight[0], "kernel": kernel, "stride": pair(stride, 1),
                         "padding": pair(padding, 0), "dilation": dilation, "groups": int(groups), "bias": bias})


@aten("conv2d", "convolution", "_convolution")
def _aten_conv(call: Call) -> Make:
    if call.attrs.get("transposed"):
        raise refuse(call, "transposed convolution has no convaudit layer type")
    weight = call.tensors[1]
    bias = len(call.tensors) > 2 and call.tensors[2].kind == "param"
    a = call.attrs
    return conv(call, weight.shape, bias, a.get("stride"), a.get("padding"), a.get("dilation"), a.get("groups", 1))


@onnx("Conv")
def _onnx_conv(call: Call) -> Make:
    a = call.attrs
    pads = a.get("pads") or [0, 0, 0, 0]
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", b"NOTSET", b"VALID"):
        raise refuse(call, f"auto_pad {a['auto_pad']!r} is not counted; export with explicit pads")
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise refuse(call, f"asymmetric pads {list(pads)}; convaudit pads symmetrically")
    weight = call.tensors[1]
    bias = len(call.tensors) > 2 and call.tensors[2].kind == "param"  # an unoptimised export feeds zeros
    return conv(call, weight.shape, bias, a.get("strides"), pads[:2], a.get("dilations"), a.get("group", 1))


@aten("linear")
def _aten_linear(call: Call) -> Make:
    x, weight = call.tensors[0], call.tensors[1]
    bias = len(call.tensors) > 2 and call.tensors[2].kind == "param"
    params: dict[str, Any] = {"out": weight.shape[0], "bias": bias}
    if rank(x) > 2:
        params["flatten"] = False  # nn.Linear on the last dimension of tokens or [H, W, C]
    return Make("linear", params)


@onnx("Gemm")
def _onnx_gemm(call: Call) -> Make:
    a = call.attrs
    weight = call.tensors[1]
    if a.get("transA", 0) or weight.kind != "param":
        raise refuse(call, "a Gemm that is not x·Wᵀ + b has no convaudit layer type")
    out = weight.shape[0] if a.get("transB", 0) else weight.shape[1]
    return Make("linear", {"out": out, "bias": len(call.tensors) > 2 and call.tensors[2].kind == "param"})


@onnx("MatMul")
def _onnx_matmul(call: Call) -> Make:
    if len(call.tensors) != 2 or call.tensors[1].kind != "param":
        raise refuse(call, "a MatMul of two activations has no convaudit layer type")
    params: dict[str, Any] = {"out": call.tensors[1].shape[-1], "bias": False}
    if rank(call.tensors[0]) > 2:
        params["flatten"] = False
    return Make("linear", params)


@aten("batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit")
def _aten_batchnorm(call: Call) -> Make:
    weight = call.tensors[1] if len(call.tensors) > 1 else None
    return Make("batchnorm", {"affine": weight is not None and weight.kind == "param"})


@onnx("BatchNormalization")
def _onnx_batchnorm(call: Call) -> Make:
    return Make("batchnorm", {"affine": True})  # ONNX always has scale and bias (identity ones when not affine)


@aten("layer_norm")
def _aten_layernorm(call: Call) -> Make:
    shape = call.attrs.get("normalized_shape") or []
    if len(shape) != 1:
        raise refuse(call, f"layer_norm over {len(shape)} dimensions; convaudit's layernorm normalises one")
    return Make("layernorm", {} if len(call.tensors) > 1 and call.tensors[1].kind == "param" else
                {"affine": False})


@onnx("LayerNormalization")
def _onnx_layernorm(call: Call) -> Make:
    if call.attrs.get("axis", -1) not in (-1, rank(call.tensors[0]) - 1):
        raise refuse(call, "LayerNormalization over other than the last axis")
    return Make("layernorm", {})


# ------------------------------------------------------------------ activations

def simple(type_name: str) -> Entry:
    return lambda call: Make(type_name)


for _name, _type in (("relu", "relu"), ("relu_", "relu"), ("silu", "silu"), ("silu_", "silu"), ("gelu", "gelu"),
                     ("gelu_", "gelu"), ("hardswish", "hardswish"), ("hardswish_", "hardswish"),
                     ("hardsigmoid", "hardsigmoid"), ("hardsigmoid_", "hardsigmoid"), ("sigmoid", "sigmoid"),
                     ("sigmoid_", "sigmoid"), ("tanh", "tanh"), ("tanh_", "tanh")):
    ATEN[_name] = simple(_type)
for _name, _type in (("Relu", "relu"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("HardSwish", "hardswish"),
                     ("HardSigmoid", "hardsigmoid"), ("Gelu", "gelu")):
    ONNX[_name] = simple(_type)


@aten("hardtanh", "hardtanh_")
def _aten_hardtanh(call: Call) -> Make:
    low, high = call.attrs.get("min_val", -1), call.attrs.get("max_val", 1)
    if (low, high) != (0, 6):
        raise refuse(call, f"hardtanh({low}, {high}) has no convaudit layer type (only ReLU6: 0, 6)")
    return Make("relu6")


@onnx("Clip")
def _onnx_clip(call: Call) -> Make:
    bounds = [t.constant for t in call.tensors[1:]] or [call.attrs.get("min"), call.attrs.get("max")]
    if [float(b) if b is not None else None for b in bounds[:2]] != [0.0, 6.0]:
        raise refuse(call, f"Clip{tuple(bounds)} has no convaudit layer type (only ReLU6: 0, 6)")
    return Make("relu6", inputs=[call.tensors[0]])


@aten("softmax", "_softmax")
def _aten_softmax(call: Call) -> Make:
    x = first_act(call)
    if dim(int(call.attrs.get("dim", -1)), rank(x)) != 1:
        raise refuse(call, "softmax over other than the features/channels dimension")
    return Make("softmax")


@onnx("Softmax")
def _onnx_softmax(call: Call) -> Make:
    x = first_act(call)
    if dim(int(call.attrs.get("axis", -1)), rank(x)) != 1:
        raise refuse(call, "Softmax over other than the features/channels axis")
    return Make("softmax")


@aten("dropout", "dropout_", "feature_dropout", "feature_dropout_", "alpha_dropout")
def _aten_dropout(call: Call) -> Make:
    return Make("dropout", {"p": float(call.attrs.get("p", 0.5))})


@onnx("Dropout", "Identity", "Cast")
def _onnx_identity(call: Call) -> Alias:
    return Alias(first_act(call))


# ------------------------------------------------------------------ pooling

@aten("max_pool2d", "max_pool2d_with_indices")
def _aten_maxpool(call: Call) -> Make:
    a = call.attrs
    kernel = pair(a["kernel_size"])
    return Make("maxpool", {"kernel": kernel, "stride": pair(a.get("stride"), None) or kernel,
                            "padding": pair(a.get("padding"), 0), "dilation": pair(a.get("dilation"), 1),
                            "ceil": bool(a.get("ceil_mode", False))})


@onnx("MaxPool")
def _onnx_maxpool(call: Call) -> Make:
    a = call.attrs
    pads = a.get("pads") or [0, 0, 0, 0]
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise refuse(call, f"asymmetric pads {list(pads)}")
    kernel = pair(a["kernel_shape"])  # strides default to 1 in ONNX (torch's pools default to the kernel)
    return Make("maxpool", {"kernel": kernel, "stride": pair(a.get("strides"), 1),
                            "padding": pair(pads[:2]), "dilation": pair(a.get("dilations"), 1),
                            "ceil": bool(a.get("ceil_mode", 0))})


@aten("avg_pool2d")
def _aten_avgpool(call: Call) -> Make:
    a = call.attrs
    kernel = pair(a["kernel_size"])
    return Make("avgpool", {"kernel": kernel, "stride": pair(a.get("stride"), None) or kernel,
                            "padding": pair(a.get("padding"), 0), "ceil": bool(a.get("ceil_mode", False))})


@onnx("AveragePool")
def _onnx_avgpool(call: Call) -> Make:
    a = call.attrs
    pads = a.get("pads") or [0, 0, 0, 0]
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise refuse(call, f"asymmetric pads {list(pads)}")
    kernel = pair(a["kernel_shape"])  # strides default to 1 in ONNX
    return Make("avgpool", {"kernel": kernel, "stride": pair(a.get("strides"), 1),
                            "padding": pair(pads[:2]), "ceil": bool(a.get("ceil_mode", 0))})


def adaptive(output: list[int]) -> Make:
    return Make("globalavgpool") if output == [1, 1] else Make("adaptiveavgpool", {"output": output})


@aten("adaptive_avg_pool2d", "_adaptive_avg_pool2d")
def _aten_adaptive(call: Call) -> Make:
    return adaptive(pair(call.attrs["output_size"]))


@onnx("GlobalAveragePool")
def _onnx_global(call: Call) -> Make:
    return Make("globalavgpool")


@aten("mean")
def _aten_mean(call: Call) -> Make:
    x = first_act(call)
    dims = sorted(dim(int(d), rank(x)) for d in call.attrs.get("dim") or [])
    if rank(x) != 4 or dims != [2, 3]:
        raise refuse(call, f"mean over dimensions {dims} of a rank-{rank(x)} tensor (only a spatial mean)")
    if call.attrs.get("keepdim"):
        return Make("globalavgpool")
    return Make("globalavgpool", extra=(Make("flatten"),))


@onnx("ReduceMean")
def _onnx_mean(call: Call) -> Make:
    x = first_act(call)
    axes = call.attrs.get("axes")
    if axes is None and len(call.tensors) > 1:
        axes = call.tensors[1].constant
    dims = sorted(dim(int(d), rank(x)) for d in (axes or []))
    if rank(x) != 4 or dims != [2, 3]:
        raise refuse(call, f"ReduceMean over axes {dims} (only a spatial mean)")
    return Make("globalavgpool") if call.attrs.get("keepdims", 1) else Make("globalavgpool", extra=(Make("flatten"),))


# ------------------------------------------------------------------ merges, and parameters used outside modules

@aten("add", "add_")
@onnx("Add")
def _add(call: Call) -> Make:
    found = acts(call)
    params = [t for t in call.tensors if t.kind == "param"]
    if len(found) == 2 and not params:
        if call.attrs.get("alpha", 1) != 1:
            raise refuse(call, "add with alpha ≠ 1")
        return Make("add", inputs=found)
    if len(found) == 1 and len(params) == 1:
        x, param = found[0], params[0]
        if rank(x) == 3 and tuple(param.shape[-2:]) == tuple(x.shape[1:]):
            return Make("posembedding", inputs=found, named_after=param.names[0])
        raise refuse(call, f"adding parameter {param.names[0]} of shape {list(param.shape)} to an activation")
    raise refuse(call, "adding a constant has no convaudit layer type")


@aten("mul", "mul_")
@onnx("Mul")
def _mul(call: Call) -> Make:
    found = acts(call)
    params = [t for t in call.tensors if t.kind == "param"]
    if len(found) == 2:
        return Make("mul", inputs=found)
    if len(found) == 1 and len(params) == 1:
        return Make("scale", inputs=found, named_after=params[0].names[0])
    raise refuse(call, "multiplying by a constant has no convaudit layer type")


@aten("cat", "concat")
@onnx("Concat")
def _cat(call: Call) -> Make | Alias:
    found = acts(call)
    params = [t for t in call.tensors if t.kind == "param"]
    axis = int(call.attrs.get("dim", call.attrs.get("axis", 0)))
    if params:
        if len(params) == 1 and len(found) == 1 and call.tensors[0].kind == "param" and rank(found[0]) == 3 \
                and dim(axis, 3) == 1:
            return Make("classtoken", inputs=found, named_after=params[0].names[0])
        raise refuse(call, "concatenating parameters with activations (other than a class token)")
    if len(found) == 1:
        return Alias(found[0])  # torch.cat of one tensor (DenseNet's first dense layer) is that tensor
    if dim(axis, rank(found[0])) != 1:
        raise refuse(call, f"concatenation along dimension {axis}; convaudit concatenates channels")
    return Make("concat", inputs=found)


# ------------------------------------------------------------------ shapes

def reshaped(call: Call, x: Value) -> Make | Alias:
    out = tuple(call.out)
    if out == tuple(x.shape):
        return Alias(x)
    if len(out) == 2 and out[1] == math.prod(x.shape[1:]) and rank(x) > 2:
        return Make("flatten")
    return Make("reshape", {"shape": list(out[1:])})


@aten("view", "reshape", "_unsafe_view", "unflatten", "flatten", "squeeze", "unsqueeze")
@onnx("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _reshape(call: Call) -> Make | Alias:
    x = first_act(call)
    if call.out[:1] != x.shape[:1]:
        raise refuse(call, f"a reshape that moves the batch dimension ({list(x.shape)} → {list(call.out)})")
    return reshaped(call, x)


def permutation(call: Call, order: list[int]) -> Make | Alias:
    x = first_act(call)
    order = [dim(int(d), rank(x)) for d in order]
    if order[0] != 0:
        raise refuse(call, f"a permutation {order} that moves the batch dimension")
    if order == sorted(order):
        return Alias(x)
    return Make("permute", {"order": [d - 1 for d in order[1:]]})


@aten("permute")
def _aten_permute(call: Call) -> Make | Alias:
    return permutation(call, list(call.attrs["dims"]))


@onnx("Transpose")
def _onnx_transpose(call: Call) -> Make | Alias:
    x = first_act(call)
    return permutation(call, list(call.attrs.get("perm") or reversed(range(rank(x)))))


@aten("transpose")
def _aten_transpose(call: Call) -> Make | Alias:
    x = first_act(call)
    order = list(range(rank(x)))
    a, b = dim(int(call.attrs["dim0"]), rank(x)), dim(int(call.attrs["dim1"]), rank(x))
    order[a], order[b] = order[b], order[a]
    return permutation(call, order)


@aten("contiguous", "clone", "alias", "detach", "lift_fresh_copy", "_to_copy", "to")
def _aten_identity(call: Call) -> Alias:
    return Alias(first_act(call))


@aten("select")
def _aten_select(call: Call) -> Make:
    x = first_act(call)
    if dim(int(call.attrs["dim"]), rank(x)) != 1:
        raise refuse(call, "select along other than the first non-batch dimension")
    return Make("select", {"index": int(call.attrs["index"])})


@onnx("Gather")
def _onnx_gather(call: Call) -> Make:
    x = first_act(call)
    index = call.tensors[1].constant if len(call.tensors) > 1 else None
    if dim(int(call.attrs.get("axis", 0)), rank(x)) != 1 or not isinstance(index, int):
        raise refuse(call, "Gather other than one index along the first non-batch axis")
    return Make("select", {"index": index})
