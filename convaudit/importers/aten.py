"""One handler per ATen operator family: the layer a call becomes (importers/reader.py walks the graph).

A handler reads the call's arguments (tensors as reader values, sizes as plain Python) and makes a readable layer
where the pattern is clean: a convolution with learned weights, a linear layer, a norm, a pool over a feature map
whose batch comes first. Otherwise a tensor operator of the same family (matmul, pointwise, reduce, views that
move the batch). A handler that cannot read a use raises Decline: the reader then reads the operator's parts, or
names it as uncounted. Dimensions given to layers are sample dimensions; the reader's `sample` and `placement`
take the batch out of the traced shapes. Torch-free.
"""

from __future__ import annotations

import math
from typing import Any

from convaudit.importers import opgraph as g
from convaudit.importers.reader import Act, Const, Decline, Learned, Reader

HANDLERS: dict[str, Any] = {}

# Other ops per output element of the element-wise operators, and what autograd keeps of them for backward.
# An element-wise operator (torch.Tag.pointwise) not listed counts 1 per output element (stated in the output).
POINTWISE_OPS = {
    "add": 1, "sub": 1, "mul": 1, "div": 1, "neg": 1, "abs": 1, "pow": 1, "sqrt": 1, "rsqrt": 1, "reciprocal": 1,
    "exp": 1, "log": 1, "sigmoid": 1, "tanh": 1, "erf": 1, "sin": 1, "cos": 1, "clamp": 2, "clamp_min": 1,
    "clamp_max": 1, "addcmul": 2, "addcdiv": 2, "lerp": 3, "where": 1, "masked_fill": 1, "leaky_relu": 2, "elu": 3,
    "softplus": 3, "mish": 5, "gelu": 5, "silu": 2, "hardswish": 5, "hardsigmoid": 4, "hardtanh": 2, "relu": 1,
    "copy": 0, "fill": 0, "zero": 0, "floor": 1, "ceil": 1, "round": 1, "sign": 1, "eq": 1, "ne": 1, "gt": 1,
    "lt": 1, "ge": 1, "le": 1, "logical_not": 1, "logical_and": 1, "logical_or": 1, "bitwise_and": 1, "square": 1,
}
SAVES = {"add": "nothing", "sub": "nothing", "neg": "nothing", "copy": "nothing", "fill": "nothing",
         "zero": "nothing", "where": "nothing", "masked_fill": "nothing", "exp": "output", "sqrt": "output",
         "rsqrt": "output", "sigmoid": "output", "tanh": "output", "reciprocal": "output", "relu": "output"}
READABLE_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "silu": "silu", "sigmoid": "sigmoid", "tanh": "tanh",
                        "hardswish": "hardswish", "hardsigmoid": "hardsigmoid", "relu6": "relu6"}
REDUCTION_OPS = {"sum": 1, "mean": 1, "amax": 1, "amin": 1, "max": 1, "min": 1, "prod": 1, "var": 3, "std": 3,
                 "var_mean": 3, "std_mean": 3, "norm": 2, "linalg_vector_norm": 2, "logsumexp": 3, "any": 1, "all": 1}


def op_name(node: g.OpNode) -> str:
    """The operator's name, in-place or not: relu_ is relu."""
    return node.packet[:-1] if node.packet.endswith("_") and not node.packet.startswith("_") else node.packet


def handles(*packets: str) -> Any:
    def register(handler: Any) -> Any:
        for packet in packets:
            HANDLERS[packet] = handler
        return handler

    return register


def leading(reader: Reader, act: Act) -> bool:  # noqa: ARG001 - the reader, for symmetry with sample_dim
    """The batch is the activation's first dimension, on its own (what convolutions and pools need)."""
    return act.rec.batch_dim == 0 and not act.rec.batch_folded


def batch_first(reader: Reader, act: Act) -> bool:
    """Leading, folded into the first dimension (B·k windows), or no batch at all (a tensor made from constants and
    parameters): the first dimension is the batch a convolution or a pool runs at."""
    return leading(reader, act) or act.rec.batch_dim is None or (act.rec.batch_dim == 0 and act.rec.batch_folded)


def sample_dim(reader: Reader, act: Act, dim: int) -> int:
    """A dimension as torch numbers it (full tensor, negative from the end) as a sample dimension."""
    rank = len(act.rec.shape)
    dim %= rank
    batch = act.rec.batch_dim
    if batch is None or act.rec.batch_folded:
        return dim
    if dim == batch:
        raise Decline(f"along the batch dimension ({dim}): samples would mix")
    return dim if dim < batch else dim - 1


def sizes(value: Any, count: int) -> list[int]:
    """An int or a list of ints for `count` axes (one value spread over all)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return values * count if len(values) == 1 else values


def operand(reader: Reader, learned: Learned, kind: str) -> dict[str, Any]:
    """A parameter operand: its shape as used, and its own elements where they are fewer (indexed, expanded)."""
    fields: dict[str, Any] = {"weight": list(learned.rec.shape) or [1]}
    # what no earlier layer counted (CaiT's class token joins the tokens, then is added to: counted once); a layer
    # of the same kind that holds all of them is shared instead (`shares:`), its operand as large as the owner's
    shared = reader.shared_owner([learned], kind) is not None
    fresh = [name for name in learned.names if shared or name not in reader.claimed]
    numel = sum(reader.numel(name) for name in fresh if not reader.is_buffer(name))
    buffers = sum(reader.numel(name) for name in fresh if reader.is_buffer(name))
    if numel != math.prod(learned.rec.shape) or buffers:
        fields["numel"] = numel
    if buffers:
        fields["buffers"] = buffers
    return fields


def plain(reader: Reader, learned: Any) -> bool:
    """A parameter used as it is (or only expanded): one name, counted nowhere yet, all its elements in use."""
    if not isinstance(learned, Learned) or len(learned.names) != 1 or learned.buffer:
        return False
    name = learned.names[0]
    return name not in reader.claimed and reader.numel(name) == math.prod(reader.sample(learned.rec))


def weights_as_held(reader: Reader, learned: Any) -> bool:
    """A weight operand that is the parameter itself (not computed from parameters in forward)."""
    return learned is None or (isinstance(learned, Learned) and not any(reader.is_buffer(n) for n in learned.names)
                               and sum(reader.numel(n) for n in learned.names) == math.prod(learned.rec.shape))


def held_bias(reader: Reader, bias: Any) -> tuple[Any, Any]:
    """(the bias the layer holds, a bias computed in forward to add after it): BEiT's and Swin V2's qkv bias is
    cat(q_bias, a zero k buffer, v_bias), 2·C parameters and C buffer elements, not 3·C parameters."""
    if bias is None or weights_as_held(reader, bias):
        return bias, None
    return None, bias


def learned_or_none(value: Any) -> bool:
    return value is None or isinstance(value, Learned)


def compact(values: list[int]) -> Any:
    return values[0] if len(set(values)) == 1 else values


# ------------------------------------------------------------------ layers with weights

@handles("conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d", "conv_transpose2d",
         "conv_transpose3d")
def convolution(reader: Reader, node: g.OpNode) -> None:
    a = node.args
    x, weight = reader.act(a["input"]), reader.value(a["weight"])
    bias = reader.value(a.get("bias"))
    if not isinstance(weight, Learned) or not learned_or_none(bias) or not weights_as_held(reader, weight):
        raise Decline("a convolution whose weights are computed in forward from parameters (weight standardisation, "
                      "a reparametrisation): no layer type holds them")
    if not batch_first(reader, x):
        raise Decline("a convolution of a tensor whose batch is not its first dimension")
    transposed = bool(a.get("transposed", node.packet.startswith("conv_transpose")))
    kernel = list(weight.rec.shape[2:])
    axes = len(kernel)
    padding = a.get("padding", 0)
    dilation = sizes(a.get("dilation", 1), axes)
    if isinstance(padding, str):  # conv2d(padding='same' / 'valid')
        spans = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        if padding == "same" and any(span % 2 for span in spans):
            raise Decline  # 'same' with an even window pads unevenly: its parts pad, then convolve
        padding = [0] * axes if padding == "valid" else [span // 2 for span in spans]
    groups = int(a.get("groups", 1))
    out = weight.rec.shape[1] * groups if transposed else weight.rec.shape[0]
    params: dict[str, Any] = {"out": out, "kernel": compact(kernel), "stride": compact(sizes(a.get("stride", 1), axes)),
                              "padding": compact(sizes(padding, axes)), "dilation": compact(dilation),
                              "groups": groups, "bias": bias is not None}
    if transposed:
        params["output_padding"] = compact(sizes(a.get("output_padding", 0), axes))
    reader.emit(node, "convtranspose" if transposed else "conv", params, [x], (weight, bias))


@handles("linear")
def linear(reader: Reader, node: g.OpNode) -> None:
    x, weight = reader.act(node.args["input"]), reader.value(node.args["weight"])
    bias = reader.value(node.args.get("bias"))
    if not isinstance(weight, Learned) or len(weight.rec.shape) != 2 or not learned_or_none(bias) \
            or not weights_as_held(reader, weight):
        raise Decline
    bias, computed = held_bias(reader, bias)
    params: dict[str, Any] = {"out": weight.rec.shape[0], "bias": bias is not None}
    if len(reader.sample(x.rec)) != 1 or not leading(reader, x):
        params["flatten"] = False  # nn.Linear on the last dimension of tokens or of an [H, W, C] map
    if computed is None:
        reader.emit(node, "linear", params, [x], (weight, bias))
        return
    product = reader.emit(node, "linear", params, [x], (weight,), op=f"{node.overload} (product)")
    add(reader, node, [product, computed], "add")  # the computed bias: one add per output element


def product_operands(reader: Reader, node: g.OpNode, left: Any, right: Any, kind: str
                     ) -> tuple[list[Act], tuple[Learned, ...], dict[str, Any]]:
    """The two operands of a product: activations as inputs, one learned operand as the layer's weight (its shape,
    and `weight_first` when it is the left one), anything else (two learned, a constant) as source layers."""
    if isinstance(left, Act) and isinstance(right, Act):
        return [left, right], (), {}
    if isinstance(right, Learned) and isinstance(left, Act):
        return [left], (right,), operand(reader, right, kind)
    if isinstance(left, Learned) and isinstance(right, Act):
        return [right], (left,), {**operand(reader, left, kind), "weight_first": True}
    return [reader.as_act(node, left), reader.as_act(node, right)], (), {}


@handles("mm", "bmm", "matmul", "addmm", "baddbmm", "mv", "addmv")
def matmul(reader: Reader, node: g.OpNode) -> None:
    names = {"mm": ("self", "mat2"), "bmm": ("self", "mat2"), "matmul": ("self", "other"), "addmm": ("mat1", "mat2"),
             "baddbmm": ("batch1", "batch2"), "mv": ("self", "vec"), "addmv": ("mat", "vec")}[node.packet]
    left, right = (reader.value(node.args[name]) for name in names)
    if left is None or right is None or not (isinstance(left, Act) or isinstance(right, Act)):
        raise Decline
    inputs, learned, params = product_operands(reader, node, left, right, "matmul")
    base = reader.value(node.args.get("self")) if node.packet.startswith("add") or node.packet == "baddbmm" else None
    if base is None:
        reader.emit(node, "matmul", params, inputs, learned)
        return
    product = reader.emit(node, "matmul", params, inputs, learned, op=f"{node.overload} (product)")
    add(reader, node, [product, base], "add")  # addmm's bias, baddbmm's input: one add per output element


@handles("new_zeros", "new_ones", "new_full", "new_empty", "new_empty_strided", "zeros_like", "ones_like",
         "full_like", "empty_like")
def made_like(reader: Reader, node: g.OpNode) -> None:
    """A tensor made from another's shape alone (Swin3D's attention mask): a constant, whatever it was made from."""
    for ref in g.refs_in(node.outputs):
        reader.values[ref.id] = Const(reader.graph.tensor(ref))


@handles("einsum")
def einsum(reader: Reader, node: g.OpNode) -> None:
    """Two operands, an explicit output: one `einsum` layer (its parts would scatter the batch over a bmm's
    dimensions); anything else is read through its parts."""
    from convaudit.core.layers import LayerProblem
    from convaudit.core.layers.products import parse_equation

    equation, refs = str(node.args.get("equation", "")).replace(" ", ""), node.args.get("tensors") or []
    try:
        parse_equation(equation)
    except LayerProblem:
        raise Decline from None
    if len(refs) != 2:
        raise Decline
    left, right = (reader.value(ref) for ref in refs)
    if left is None or right is None or any(isinstance(v, Act) and v.rec.batch_folded for v in (left, right)):
        raise Decline
    inputs, learned, params = product_operands(reader, node, left, right, "einsum")
    reader.emit(node, "einsum", {"equation": equation, **params}, inputs, learned)


@handles("scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
         "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention")
def attention(reader: Reader, node: g.OpNode) -> None:
    a = node.args
    q, k, v = (reader.act(a[name]) for name in ("query", "key", "value"))
    inputs = [q, k, v]
    mask = reader.value(a.get("attn_mask"))
    if mask is not None:
        inputs.append(reader.as_act(node, mask))
    if a.get("dropout_p", 0) not in (0, 0.0):
        raise Decline
    reader.emit(node, "sdpa", {"causal": bool(a.get("is_causal", False))}, inputs)


# ------------------------------------------------------------------ normalisation

@handles("layer_norm", "native_layer_norm")
def layer_norm(reader: Reader, node: g.OpNode) -> None:
    x, weight = reader.act(node.args["input"]), reader.value(node.args.get("weight"))
    bias = reader.value(node.args.get("bias"))
    if len(node.args["normalized_shape"]) != 1:
        raise Decline
    params = {} if isinstance(weight, Learned) else {"affine": False}
    if isinstance(weight, Learned) and not isinstance(bias, Learned):
        params["bias"] = False
    reader.emit(node, "layernorm", params, [x], (weight if isinstance(weight, Learned) else None,
                                                  bias if isinstance(bias, Learned) else None))


@handles("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm", "_batch_norm_impl_index",
         "_native_batch_norm_legit")
def batch_norm(reader: Reader, node: g.OpNode) -> None:
    a = node.args
    x = reader.act(a["input"])
    if not batch_first(reader, x):
        raise Decline
    learned = tuple(v for v in (reader.value(a.get(name)) for name in ("weight", "bias", "running_mean", "running_var"))
                    if isinstance(v, Learned))
    affine = isinstance(reader.value(a.get("weight")), Learned)
    reader.emit(node, "batchnorm", {} if affine else {"affine": False}, [x], learned)


@handles("group_norm", "native_group_norm")
def group_norm(reader: Reader, node: g.OpNode) -> None:
    a = node.args
    x = reader.act(a["input"])
    if not batch_first(reader, x):
        raise Decline
    groups = int(a.get("num_groups", a.get("group", 1)))
    weight, bias = reader.value(a.get("weight")), reader.value(a.get("bias"))
    affine = isinstance(weight, Learned)
    reader.emit(node, "groupnorm", {"groups": groups} | ({} if affine else {"affine": False}), [x],
                (weight if affine else None, bias if isinstance(bias, Learned) else None))


@handles("rms_norm", "_fused_rms_norm")
def rms_norm(reader: Reader, node: g.OpNode) -> None:
    x, weight = reader.act(node.args["input"]), reader.value(node.args.get("weight"))
    params: dict[str, Any] = {"dims": len(node.args["normalized_shape"])}
    if not isinstance(weight, Learned):
        params["affine"] = False
    reader.emit(node, "rmsnorm", params, [x], (weight if isinstance(weight, Learned) else None,))


# ------------------------------------------------------------------ element-wise

@handles("relu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid")
def activation(reader: Reader, node: g.OpNode) -> None:
    if op_name(node) == "gelu" and node.args.get("approximate", "none") != "none":
        raise Decline  # the tanh approximation: a pointwise operator of its own count
    reader.emit(node, READABLE_ACTIVATIONS[op_name(node)], {}, [reader.act(node.args["self"])])


@handles("hardtanh")
def hardtanh(reader: Reader, node: g.OpNode) -> None:
    if (node.args.get("min_val", -1), node.args.get("max_val", 1)) != (0, 6):
        raise Decline
    reader.emit(node, "relu6", {}, [reader.act(node.args["self"])])


@handles("softmax", "_softmax")
def softmax(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args["self"])
    reader.emit(node, "softmax", {"dim": sample_dim(reader, x, int(node.args["dim"]))}, [x])


@handles("add", "sub", "mul", "div")
def binary(reader: Reader, node: g.OpNode) -> None:
    values = [reader.value(node.args.get(name)) for name in ("self", "other")]
    alpha = node.args.get("alpha", 1)
    acts = [v for v in values if isinstance(v, Act)]
    others = [v for v in values if v is not None and not isinstance(v, Act)]
    op = op_name(node)
    if op == "add" and alpha == 1 and len(acts) == 2 and acts[0].rec.shape == acts[1].rec.shape \
            and reader.placement(acts[0].rec) == reader.placement(acts[1].rec):
        reader.emit(node, "add", {}, acts)
        return
    if op == "mul" and len(acts) == 2:
        reader.emit(node, "mul", {}, acts)
        return
    if len(acts) == 1 and len(others) == 1 and isinstance(others[0], Learned) and _readable_learned(
            reader, node, acts[0], others[0]):
        return
    add(reader, node, [*acts, *others], op)


def _readable_learned(reader: Reader, node: g.OpNode, x: Act, learned: Learned) -> bool:
    """x + a position embedding of x's shape, x · a layer scale along the channels or the last dimension."""
    shape, lshape = reader.sample(x.rec), learned.rec.shape
    if not leading(reader, x) or not plain(reader, learned):
        return False
    if op_name(node) == "add" and len(shape) == 2 and tuple(lshape[-2:]) == shape \
            and math.prod(lshape) == math.prod(shape):
        reader.emit(node, "posembedding", {}, [x], (learned,), named_after=learned.names[0])
        return True
    if op_name(node) == "mul" and len(lshape) >= 1 and math.prod(lshape) in (shape[0], shape[-1]):
        if math.prod(lshape) == shape[-1] and lshape[-1] == shape[-1]:
            over = "last"
        elif lshape == (shape[0],) + (1,) * (len(shape) - 1) or lshape == (1, shape[0]) + (1,) * (len(shape) - 1):
            over = "channels"
        else:
            return False
        reader.emit(node, "scale", {} if over == "channels" else {"over": "last"}, [x], (learned,),
                    named_after=learned.names[0])
        return True
    return False


def add(reader: Reader, node: g.OpNode, values: list[Any], op: str) -> Act:
    """A pointwise operator over activations and at most one learned or constant operand."""
    acts = [v for v in values if isinstance(v, Act)]
    others = [v for v in values if isinstance(v, (Learned, Const))]
    params: dict[str, Any] = {"op": op, "ops": POINTWISE_OPS.get(op, 1), "saves": SAVES.get(op, "inputs")}
    learned: tuple[Learned, ...] = ()
    if len(others) > 1:
        acts += [reader.as_act(node, other) for other in others[1:]]
    if others:
        first = others[0]
        if isinstance(first, Learned):
            learned = (first,)
            params.update(operand(reader, first, "pointwise"))
            if values and values[0] is first:
                params["weight_first"] = True
        else:
            acts.append(reader.as_act(node, first))
    return reader.emit(node, "pointwise", params, acts, learned, op=node.overload)


@handles("#pointwise")
def pointwise(reader: Reader, node: g.OpNode) -> None:
    values = [v for v in reader.operands(node)]
    add(reader, node, values, op_name(node))


# ------------------------------------------------------------------ pooling and reductions

@handles("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
         "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d")
def pool(reader: Reader, node: g.OpNode) -> None:
    a = node.args
    x = reader.act(a["self"])
    if not batch_first(reader, x):
        raise Decline
    axes = len(reader.sample(x.rec)) - 1
    kernel = sizes(a["kernel_size"], axes)
    stride = sizes(a.get("stride") or kernel, axes)
    params: dict[str, Any] = {"kernel": compact(kernel), "stride": compact(stride),
                              "padding": compact(sizes(a.get("padding", 0), axes)), "ceil": bool(a.get("ceil_mode"))}
    if node.packet.startswith("max"):
        params["dilation"] = compact(sizes(a.get("dilation", 1), axes))
    reader.emit(node, "maxpool" if node.packet.startswith("max") else "avgpool", params, [x])


@handles("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool2d",
         "_adaptive_avg_pool3d")
def adaptive_pool(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args["self"])
    if not batch_first(reader, x):
        raise Decline
    output = list(reader.sample(reader.out(node))[1:])
    if all(size == 1 for size in output):
        reader.emit(node, "globalavgpool", {}, [x])
    else:
        reader.emit(node, "adaptiveavgpool", {"output": compact(output)}, [x])


@handles("adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")
def adaptive_max_pool(reader: Reader, node: g.OpNode) -> None:
    """To one position: the largest over each map (a reduction); to more, adaptive max pooling."""
    x = reader.act(node.args["self"])
    spatial = list(range(1, len(reader.sample(x.rec))))
    if not batch_first(reader, x):
        raise Decline
    output = list(reader.sample(reader.out(node))[1:])
    if any(size != 1 for size in output):
        reader.emit(node, "adaptivemaxpool", {"output": compact(output)}, [x])
        return
    reader.emit(node, "reduce", {"op": "amax", "dims": spatial, "keepdim": True, "ops": 1, "saves": "inputs"}, [x])


@handles("mean", "sum", "amax", "amin", "var", "std", "norm", "linalg_vector_norm", "logsumexp", "var_mean",
         "std_mean")
def reduce(reader: Reader, node: g.OpNode) -> None:
    x = reader.act(node.args.get("self", node.args.get("input")))
    dims = node.args.get("dim")
    rank = len(x.rec.shape)
    full = list(range(rank)) if dims in (None, []) else [d % rank for d in (dims if isinstance(dims, list) else [dims])]
    sample = sorted(sample_dim(reader, x, d) for d in full)
    keep = bool(node.args.get("keepdim", False))
    spatial = list(range(1, len(reader.sample(x.rec))))
    if node.packet == "mean" and leading(reader, x) and sample == spatial and len(spatial) >= 1:
        if keep:  # a global average pool: [C, 1, 1]
            reader.emit(node, "globalavgpool", {}, [x])
            return
        # without keepdim: the pooled [C, 1, 1] map, then flattened (two layers, one operator)
        pooled = g.TensorRec(-1 - len(reader.layers), x.rec.shape[:2] + (1,) * len(spatial), x.rec.dtype,
                             g.ACTIVATION, batch_dim=0)
        reader.emit(node, "flatten", {}, [reader.emit(node, "globalavgpool", {}, [x], out=pooled)])
        return
    params = {"op": node.packet, "dims": sample, "keepdim": keep, "ops": REDUCTION_OPS.get(node.packet, 1)}
    reader.emit(node, "reduce", params, [x])


@handles("#reduction")
def reduction(reader: Reader, node: g.OpNode) -> None:
    reduce(reader, node)


# the views and data movement register their handlers here too
from convaudit.importers import aten_movement, aten_recurrent  # noqa: E402, F401
