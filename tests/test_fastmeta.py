"""importers.fastmeta: every answer a rule gives is the meta kernel's, exactly (shape, strides, dtype, offset).

The oracle is the kernel itself, run on the same arguments with no rule. Hypothesis draws shapes (broadcast,
0-dim, size 1), dtypes and layouts (contiguous, permuted such as channels_last, odd strides on size-1
dimensions, broadcast stride 0, gaps, offsets); a rule must either decline (and the kernel runs) or give what
the kernel gives, and where the kernel raises, so must the call. Dtypes are learnt from one call and reused for
another of other shapes, as in a trace. Then whole traces with and without the rules must be the same OpGraph.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.needs_torch
torch = pytest.importorskip("torch")
nn = torch.nn

from convaudit.importers import metacache  # noqa: E402
from convaudit.importers.fastmeta import FastMeta, _pointwise_rule  # noqa: E402

aten = torch.ops.aten
FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
DTYPES = (*FLOATS, torch.int64, torch.bool)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ the oracle and the rule, side by side


def described(out, args):
    if isinstance(out, tuple):
        return tuple(described(o, args) for o in out)
    return (tuple(out.shape), out.stride(), out.dtype, out.storage_offset(), out.is_meta, bool(args) and out is args[0])


def outcome(run, func, args, kwargs):
    try:
        return described(run(func, args, kwargs), args)
    except Exception as error:  # noqa: BLE001 - the kernel's error is part of its answer
        return type(error)


def kernel(func, args, kwargs):
    return func(*args, **kwargs)


def check(func, args, kwargs, learn_from):
    """The call through FastMeta against the kernel, its dtypes learnt first from `learn_from` (the same
    signature at other sizes: a rule then answers even where the kernel raises, and must not), then from its
    own call where that one failed; returns whether a rule answered."""
    fast = FastMeta(torch, {})
    expected = outcome(kernel, func, args, kwargs)
    outcome(fast.run, func, *learn_from)
    first = outcome(fast.run, func, args, kwargs)
    second = outcome(fast.run, func, args, kwargs)
    assert first == expected, (func, args, kwargs)
    assert second == expected, (func, args, kwargs)
    return fast.answered > 0


def twin(args, kwargs, **sizes):
    """The same signature at size 1: each tensor all ones (its dtype and number of dimensions), contiguous, and
    the arguments read as sizes given (by name: position numbers as `at3`)."""
    small = lambda v: meta((1,) * v.dim(), v.dtype) if isinstance(v, torch.Tensor) else v  # noqa: E731
    args = tuple(sizes.get(f"at{i}", small(a)) for i, a in enumerate(args))
    return args, {name: sizes.get(name, small(v)) for name, v in kwargs.items()}


# ------------------------------------------------------------------ meta tensors of every layout


def contiguous_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


@st.composite
def layouts(draw, shape, usual=6):
    """(strides, offset): contiguous `usual` times in `usual` + 5, else permuted, odd strides on size-1 dims,
    broadcast, gapped or offset."""
    ndim = len(shape)
    kind = draw(st.sampled_from(["contiguous"] * usual + ["permuted", "size-1", "broadcast", "gapped", "offset"]))
    strides = list(contiguous_strides(shape))
    if kind == "permuted" and ndim > 1:
        order = draw(st.permutations(range(ndim)))  # outermost first
        step = 1
        for dim in reversed(order):
            strides[dim] = step
            step *= max(shape[dim], 1)
    elif kind == "size-1":
        strides = [draw(st.integers(1, 40)) if size == 1 else s for size, s in zip(shape, strides, strict=True)]
    elif kind == "broadcast" and ndim:
        strides[draw(st.integers(0, ndim - 1))] = 0
    elif kind == "gapped":
        strides = [2 * s for s in strides]
    return tuple(strides), draw(st.integers(1, 5)) if kind == "offset" else 0


def meta(shape, dtype, layout=None):
    strides, offset = layout or (contiguous_strides(shape), 0)
    extent = 1 + sum((size - 1) * stride for size, stride in zip(shape, strides, strict=True)) if all(shape) else 0
    base = torch.empty(extent + offset, dtype=dtype, device="meta")
    return base.as_strided(shape, strides, offset)


@st.composite
def tensor(draw, shape, dtypes=FLOATS, usual=6):
    shape = tuple(shape)
    return meta(shape, draw(st.sampled_from(dtypes)), draw(layouts(shape, usual)))


sizes = st.integers(1, 4) | st.just(1)


@st.composite
def broadcast_shapes(draw, count):
    """`count` shapes that broadcast together: the first is the whole shape, the others trailing parts of it
    with some sizes 1; one in ten times one of them does not fit (a size one more than the whole shape's)."""
    whole = draw(st.lists(sizes, max_size=4))
    shapes = [tuple(whole)]
    for _ in range(count - 1):
        shape = whole[draw(st.integers(0, len(whole))):]
        shapes.append(tuple(1 if draw(st.integers(0, 3)) == 0 else s for s in shape))
    wide = [i for i, s in enumerate(whole) if s > 1]
    if count > 1 and wide and draw(st.integers(0, 9)) == 0:
        i = draw(st.sampled_from(wide))
        shapes[-1] = (*whole[:i], whole[i] + 1, *whole[i + 1:])
    return draw(st.permutations(shapes))


# Where the rules' conditions matter: size-1 dimensions with other strides than the contiguous ones (is_contiguous()
# all the same, and the decompositions copy such strides), a tensor both contiguous and channels_last, permuted,
# broadcast (stride 0), gapped, at an offset.
TRICKY = [((1, 3, 1, 4), (50, 4, 7, 1), 0), ((1, 3, 1, 1), (3, 1, 1, 1), 0), ((1, 3, 1, 1), (3, 1, 3, 3), 0),
          ((2, 3, 4), (1, 8, 2), 0), ((2, 3, 4), (12, 0, 1), 0), ((2, 3, 4), (24, 8, 2), 0), ((2, 3, 4), (12, 4, 1), 5),
          ((3, 1), (1, 5), 0), ((1, 4), (9, 1), 0), ((4,), (2,), 0)]


def tricky(dtype=torch.float32):
    return [meta(shape, dtype, (strides, offset)) for shape, strides, offset in TRICKY]


# ------------------------------------------------------------------ element-wise operators


UNARY = [aten.relu.default, aten.gelu.default, aten.hardswish.default, aten.hardsigmoid.default, aten.silu.default,
         aten.sigmoid.default, aten.tanh.default, aten.exp.default, aten.neg.default, aten.rsqrt.default,
         aten.abs.default, aten.erf.default, aten.leaky_relu.default, aten.hardtanh.default, aten.mish.default,
         aten.logical_not.default, aten.bitwise_not.default, aten.sign.default, aten.softplus.default]
BINARY = [aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.maximum.default,
          aten.pow.Tensor_Tensor, aten.eq.Tensor, aten.lt.Tensor, aten.bitwise_and.Tensor, aten.logical_and.default,
          aten.remainder.Tensor, aten.atan2.default, aten.where.self, aten.addcmul.default, aten.lerp.Tensor,
          aten.masked_fill.Scalar, aten.mul.Scalar, aten.add.Scalar, aten.div.Scalar, aten.pow.Tensor_Scalar,
          aten.rsub.Scalar, aten.clamp.default, aten.eq.Scalar, aten.div.Tensor_mode]
IN_PLACE = [aten.relu_.default, aten.hardswish_.default, aten.silu_.default, aten.sigmoid_.default,
            aten.add_.Tensor, aten.mul_.Tensor, aten.sub_.Tensor, aten.div_.Tensor, aten.mul_.Scalar,
            aten.clamp_min_.default, aten.masked_fill_.Scalar, aten.gelu_.default, aten.addcmul_.default]
STRINGS = {"approximate": ["none", "tanh"], "rounding_mode": [None, "trunc", "floor"]}
NUMBERS = st.sampled_from([2, 0.5, -1, True, 3.0])


def tensor_arguments(func):
    return [a for a in func._schema.arguments if "Tensor" in str(a.type)]


def call(func, tensors, other=lambda a: 2, skip_defaults=lambda a: True):
    """(args, kwargs) for `func`: tensors by name, strings from STRINGS, other arguments `other(argument)`,
    arguments with a default left out where `skip_defaults(argument)`."""
    args, kwargs = [], {}
    for a in func._schema.arguments:
        if a.name in tensors:
            value = tensors[a.name]
        elif a.has_default_value() and skip_defaults(a):
            continue
        elif a.name in STRINGS:
            value = STRINGS[a.name][-1]
        else:
            value = other(a)
        if a.kwarg_only:
            kwargs[a.name] = value
        else:
            args.append(value)
    return tuple(args), kwargs


def flag_dtype(argument, dtype):
    return torch.bool if argument.name in ("mask", "condition") else dtype


@SETTINGS
@given(st.data())
def test_elementwise_rule_is_the_kernels_answer(data):
    func = data.draw(st.sampled_from(UNARY + BINARY + IN_PLACE))
    tensors = tensor_arguments(func)
    shapes = data.draw(broadcast_shapes(len(tensors)))
    made = {a.name: data.draw(tensor(shape, (flag_dtype(a, data.draw(st.sampled_from(DTYPES))),)))
            for a, shape in zip(tensors, shapes, strict=True)}
    args, kwargs = call(func, made, lambda a: data.draw(NUMBERS), lambda a: data.draw(st.booleans()))
    check(func, args, kwargs, twin(args, kwargs))


def every_pointwise_overload():
    found = []
    for name in sorted({n for n in torch._C._dispatch_get_all_op_names() if n.startswith("aten::")}):
        packet, _, overload = name[len("aten::"):].partition(".")
        func = getattr(getattr(aten, packet), overload or "default")
        if _pointwise_rule(torch, func) is not None:
            found.append(func)
    return found


@pytest.mark.filterwarnings("ignore:An output with one or more elements was resized")
def test_every_operator_the_elementwise_rule_takes_answers_as_its_kernel():
    """Not only the common ones: every overload the rule takes, broadcast either way, with a 0-dim operand, on
    integers, and with tricky layouts as its first operand (the dtypes learnt from the same call at size 1)."""
    answered = 0
    funcs = every_pointwise_overload()
    assert len(funcs) > 300
    cases = [((2, 3, 4), (3, 1), torch.float32), ((3, 1), (2, 3, 4), torch.float32), ((2, 3), (), torch.float32),
             ((4, 1), (1, 5), torch.int64)]
    for func in funcs:
        tensors = tensor_arguments(func)
        for first, other, dtype in cases:
            shapes = [first] + [other] * (len(tensors) - 1)
            args, kwargs = call(func, {a.name: meta(s, flag_dtype(a, dtype)) for a, s in zip(tensors, shapes,
                                                                                             strict=True)})
            answered += check(func, args, kwargs, twin(args, kwargs))
        for odd in [tricky()[i] for i in (0, 2, 3)]:  # odd strides on size-1 dims, NC11 as channels_last, permuted
            made = {a.name: odd if i == 0 else meta(tuple(odd.shape), flag_dtype(a, odd.dtype))
                    for i, a in enumerate(tensors)}
            args, kwargs = call(func, made)
            check(func, args, kwargs, twin(args, kwargs))
    assert answered > len(funcs)  # most overloads answer some of their calls


# ------------------------------------------------------------------ norms, matrix products, reductions, softmax


def check_batch_norm(x, params, training, eps):
    small = {f"at{i}": p if p is None else meta((1,), p.dtype) for i, p in enumerate(params, 1)}
    if training is None:
        args = (x, *params, 0.1, eps)
        check(aten._native_batch_norm_legit_no_training.default, args, {}, twin(args, {}, **small))
    else:
        args = (x, *params, training, 0.1, eps)
        check(aten.native_batch_norm.default, args, {}, twin(args, {}, **small))


@SETTINGS
@given(st.data())
def test_batch_norm_rule_is_the_kernels_answer(data):
    shape = data.draw(st.lists(sizes, min_size=2, max_size=5))
    dtype = data.draw(st.sampled_from(FLOATS))
    x = data.draw(tensor(shape, (dtype,)))
    channels = shape[1] if data.draw(st.integers(0, 9)) else shape[1] + 1
    params = [None if data.draw(st.integers(0, 9)) == 0 else
              data.draw(tensor((channels,), (dtype, torch.float32), usual=40)) for _ in range(4)]
    check_batch_norm(x, params, data.draw(st.sampled_from([None, False, False, True])), data.draw(
        st.sampled_from([1e-5, 1e-3])))


def check_layer_norm(x, normalized, weight, bias):
    args = (x, normalized, weight, bias, 1e-5)
    ones = [1] * len(normalized)
    small = {"at1": ones, "at2": weight if weight is None else meta(tuple(ones), weight.dtype),
             "at3": bias if bias is None else meta(tuple(ones), bias.dtype)}
    if x.dim() < len(normalized):
        small["at0"] = meta(tuple(ones), x.dtype)
    check(aten.native_layer_norm.default, args, {}, twin(args, {}, **small))


def check_group_norm(x, weight, bias, sizes_given):
    args = (x, weight, bias, *sizes_given, 1e-5)
    small = {"at1": weight if weight is None else meta((1,), weight.dtype), "at2": bias if bias is None else meta(
        (1,), bias.dtype), "at3": 1, "at4": 1, "at5": 1, "at6": 1}
    check(aten.native_group_norm.default, args, {}, twin(args, {}, **small))


@SETTINGS
@given(st.data())
def test_layer_and_group_norm_rules_are_the_kernels_answers(data):
    dtype = data.draw(st.sampled_from(FLOATS))
    if data.draw(st.booleans()):
        shape = data.draw(st.lists(sizes, min_size=1, max_size=4))
        normalized = shape[-data.draw(st.integers(1, len(shape))):]
        if data.draw(st.integers(0, 9)) == 0:
            normalized = [*normalized[:-1], normalized[-1] + 1]
        weight, bias = (None if data.draw(st.booleans()) else data.draw(tensor(normalized, (dtype, torch.float32)))
                        for _ in range(2))
        check_layer_norm(data.draw(tensor(shape, (dtype,), usual=3)), normalized, weight, bias)
    else:
        groups = data.draw(st.integers(1, 3))
        shape = [data.draw(sizes), groups * data.draw(sizes), *data.draw(st.lists(sizes, max_size=2))]
        asked = groups if data.draw(st.integers(0, 9)) else data.draw(st.sampled_from([groups + 1, 0]))
        sizes_given = [shape[0], shape[1], math.prod(shape[2:]), asked]
        if data.draw(st.integers(0, 9)) == 0:
            sizes_given[data.draw(st.integers(0, 2))] += 1
        weight, bias = (None if data.draw(st.booleans()) else data.draw(tensor((shape[1],), (dtype,)))
                        for _ in range(2))
        check_group_norm(data.draw(tensor(shape, (dtype,))), weight, bias, sizes_given)


PRODUCTS = {aten.mm.default: (2, False), aten.addmm.default: (2, True), aten.bmm.default: (3, False),
            aten.baddbmm.default: (3, True)}  # operator -> (rank, adds `self`)


def check_product(func, args, kwargs=None):
    check(func, args, kwargs or {}, twin(args, kwargs or {}))


@SETTINGS
@given(st.data())
def test_matrix_product_rules_are_the_kernels_answers(data):
    func = data.draw(st.sampled_from(list(PRODUCTS)))
    rank, added = PRODUCTS[func]
    lead = (data.draw(sizes),) if rank == 3 else ()
    m, k, n = (data.draw(sizes) for _ in range(3))
    dtype = data.draw(st.sampled_from(FLOATS))
    dtypes = (dtype,) if data.draw(st.integers(0, 5)) else FLOATS
    inner = k if data.draw(st.integers(0, 9)) else k + 1
    second = data.draw(tensor((*lead, inner, n), dtypes)) if data.draw(st.booleans()) else data.draw(
        tensor((*lead, n, inner), dtypes)).transpose(-1, -2)
    factors = (data.draw(tensor((*lead, m, k), dtypes)), second)
    if not added:
        check_product(func, factors)
        return
    bias = data.draw(st.sampled_from([(n,), (1, n), (*lead, m, n), (m, 1), (), (1,), (n + 1,), (2, *lead, m, n)]))
    kwargs = {name: data.draw(st.sampled_from([1, 0, 0.5, 2])) for name in ("beta", "alpha")
              if data.draw(st.booleans())}
    check_product(func, (data.draw(tensor(bias, dtypes)), *factors), kwargs)


REDUCTIONS = [aten.mean.dim, aten.sum.dim_IntList, aten.amax.default, aten.amin.default]


def check_reduction(func, x, dims, keep, kwargs):
    check(func, (x, dims, keep), kwargs, twin((x, dims, keep), kwargs, at1=[0], at2=False))


@SETTINGS
@given(st.data())
def test_reduction_rule_is_the_kernels_answer(data):
    func = data.draw(st.sampled_from(REDUCTIONS))
    shape = data.draw(st.lists(sizes, max_size=4))
    x = data.draw(tensor(shape, FLOATS if data.draw(st.integers(0, 3)) else DTYPES))
    ndim = max(len(shape), 1)
    if data.draw(st.integers(0, 4)):  # distinct dimensions in range
        dims = [d - ndim * data.draw(st.booleans()) for d in data.draw(st.lists(st.integers(0, ndim - 1), min_size=1,
                                                                                max_size=ndim, unique=True))]
    else:  # also repeated, out of range, none
        dims = data.draw(st.lists(st.integers(-ndim - 1, ndim), max_size=3))
    kwargs = {}
    if func in (aten.mean.dim, aten.sum.dim_IntList) and data.draw(st.booleans()):
        kwargs["dtype"] = data.draw(st.sampled_from([torch.float64, torch.float32, torch.int64]))
    check_reduction(func, x, dims, data.draw(st.booleans()), kwargs)


SOFTMAXES = [aten._softmax.default, aten._log_softmax.default, aten._safe_softmax.default]


def check_softmax(func, x, dim, last):
    args = (x, dim) if func == aten._safe_softmax.default else (x, dim, last)
    kwargs = {"dtype": last} if func == aten._safe_softmax.default and last is not None else {}
    check(func, args, kwargs, twin(args, kwargs, at1=0))


@SETTINGS
@given(st.data())
def test_softmax_rule_is_the_kernels_answer(data):
    func = data.draw(st.sampled_from(SOFTMAXES))
    shape = data.draw(st.lists(sizes, max_size=4))
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    last = data.draw(st.sampled_from((None, *FLOATS)) if func == aten._safe_softmax.default else st.booleans())
    check_softmax(func, data.draw(tensor(shape, FLOATS)), dim, last)


def check_roll(x, shifts, dims):
    check(aten.roll.default, (x, shifts, dims), {}, twin((x, shifts, dims), {}, at1=[1], at2=[0]))


@SETTINGS
@given(st.data())
def test_roll_rule_is_the_kernels_answer(data):
    shape = data.draw(st.lists(sizes, max_size=4))
    ndim = max(len(shape), 1)
    dims = data.draw(st.lists(st.integers(-ndim - 1, ndim), max_size=3))
    shifts = data.draw(st.lists(st.integers(-5, 5), min_size=len(dims), max_size=len(dims))) if data.draw(
        st.integers(0, 5)) else data.draw(st.lists(st.integers(-5, 5), max_size=2))
    check_roll(data.draw(tensor(shape, DTYPES)), shifts, dims)


def check_convolution(x, weight, bias, steps, transposed, groups):
    args = (x, weight, bias, *steps, transposed, [0] * (x.dim() - 2), groups)
    ones = [1] * (x.dim() - 2)
    small = {"at1": meta((1,) * weight.dim(), weight.dtype), "at2": bias if bias is None else meta((1,), bias.dtype),
             "at3": ones, "at4": [0] * len(ones), "at5": ones, "at8": 1}
    check(aten.convolution.default, args, {}, twin(args, {}, **small))


@SETTINGS
@given(st.data())
def test_convolution_rule_is_the_kernels_answer(data):
    spatial = data.draw(st.integers(1, 3))
    groups = data.draw(st.integers(1, 3))
    per_group = data.draw(st.integers(1, 2))
    kernel = [data.draw(st.integers(1, 3)) for _ in range(spatial)]
    shape = [data.draw(st.integers(1, 2)), groups * per_group, *(data.draw(st.integers(1, 6)) for _ in range(spatial))]
    weight_shape = [data.draw(st.integers(1, 3)) * groups, per_group if data.draw(st.integers(0, 9)) else per_group + 1,
                    *kernel]
    dtype = data.draw(st.sampled_from(FLOATS))

    def per_axis(low, high):
        values = [data.draw(st.integers(low, high)) for _ in range(spatial)]
        return values[:1] if data.draw(st.booleans()) else values

    bias = None if data.draw(st.booleans()) else data.draw(tensor((weight_shape[0],), (dtype,)))
    steps = (per_axis(1, 3), per_axis(0, 2), per_axis(1, 2))
    check_convolution(data.draw(tensor(shape, (dtype,))), data.draw(tensor(weight_shape, (dtype,))), bias, steps,
                      data.draw(st.integers(0, 9)) == 0, groups)


def test_tricky_layouts_in_every_rule():
    """Each rule on each tricky layout (see TRICKY), as its main operand (strides never depend on the dtype: two
    of them, one with a computation dtype of its own)."""
    for dtype in (torch.float32, torch.bfloat16):
        for x in tricky(dtype):
            shape, ndim = tuple(x.shape), x.dim()
            if ndim >= 2:
                c = meta((shape[1],), dtype)
                check_batch_norm(x, [c, c, c, c], False, 1e-5)
                check_batch_norm(x, [c, c, c, c], None, 1e-5)
                check_group_norm(x, c, c, [shape[0], shape[1], math.prod(shape[2:]), 1])
            if ndim >= 3:
                spatial = ndim - 2
                check_convolution(x, meta((2, shape[1], *[1] * spatial), dtype), None, ([1], [0], [1]), False, 1)
            w = meta(shape[-1:], dtype)
            check_layer_norm(x, list(shape[-1:]), w, w)
            check_layer_norm(x, list(shape[-2:]), None, None)
            if ndim in (2, 3):  # as a factor, and as the `self` added
                rank_of = {2: (aten.mm.default, aten.addmm.default), 3: (aten.bmm.default, aten.baddbmm.default)}
                product, added = rank_of[ndim]
                check_product(product, (x, meta((*shape[:-2], shape[-1], 5), dtype)))
                check_product(product, (meta((*shape[:-2], 5, shape[-2]), dtype), x))
                check_product(added, (x, meta((*shape[:-1], 2), dtype), meta((*shape[:-2], 2, shape[-1]), dtype)))
            for func in REDUCTIONS:
                check_reduction(func, x, [-1], True, {})
                check_reduction(func, x, [0], False, {})
            for func in SOFTMAXES:
                check_softmax(func, x, -1, None if func == aten._safe_softmax.default else False)
            check_roll(x, [1, -2], [0, -1])
            for func in (aten.add.Tensor, aten.add_.Tensor, aten.mul.Tensor, aten.mul_.Tensor):
                for other in (meta(shape, dtype), meta(shape[-1:], dtype), meta((), dtype)):
                    check(func, (x, other), {}, twin((x, other), {}))
                    check(func, (other, x), {}, twin((other, x), {}))


def test_calls_the_kernel_refuses_are_refused():
    """Each shape the kernel rejects, once the signature's dtypes are known (from a call that works): the rule
    must decline, so that the call raises as the kernel does."""
    f32 = torch.float32
    x, c = meta((2, 4, 5, 5), f32), meta((4,), f32)

    def refused(func, args, kwargs, learn_from):
        assert outcome(kernel, func, *learn_from) is not RuntimeError and outcome(kernel, func, args, kwargs) in (
            RuntimeError, IndexError, ValueError), (func, args)
        check(func, args, kwargs, learn_from)

    def pair(func, bad, good, kwargs=None):
        refused(func, bad, kwargs or {}, (good, kwargs or {}))

    pair(aten.add.Tensor, (meta((2, 3), f32), meta((4,), f32)), (meta((2, 3), f32), meta((3,), f32)))
    pair(aten.add_.Tensor, (meta((3,), f32), meta((2, 3), f32)), (meta((2, 3), f32), meta((3,), f32)))
    pair(aten.mul_.Tensor, (meta((1, 3), f32), meta((2, 1), f32)), (meta((2, 3), f32), meta((2, 1), f32)))
    pair(aten.native_batch_norm.default, (x, meta((3,), f32), c, c, c, False, 0.1, 1e-5),
         (x, c, c, c, c, False, 0.1, 1e-5))
    pair(aten.native_layer_norm.default, (x, [4], None, None, 1e-5), (x, [5], None, None, 1e-5))
    pair(aten.native_layer_norm.default, (x, [5], c, None, 1e-5), (x, [4, 5, 5], meta((4, 5, 5), f32), None, 1e-5))
    pair(aten.native_group_norm.default, (x, c, c, 2, 4, 25, 3, 1e-5), (x, c, c, 2, 4, 25, 2, 1e-5))
    pair(aten.native_group_norm.default, (x, c, c, 2, 4, 24, 2, 1e-5), (x, c, c, 2, 4, 25, 2, 1e-5))
    conv = (x, meta((8, 4, 3, 3), f32), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    for position, value in ((1, meta((8, 3, 3, 3), f32)), (1, meta((8, 4, 6, 6), f32)), (5, [3, 3]),
                            (8, 2)):
        pair(aten.convolution.default, (*conv[:position], value, *conv[position + 1:]), conv)
    pair(aten.addmm.default, (c, meta((3, 2), f32), meta((3, 4), f32)), (c, meta((3, 2), f32), meta((2, 4), f32)))
    pair(aten.addmm.default, (meta((3,), f32), meta((3, 2), f32), meta((2, 4), f32)),
         (c, meta((3, 2), f32), meta((2, 4), f32)))
    pair(aten.mm.default, (meta((3, 2), f32), meta((3, 4), f32)), (meta((3, 2), f32), meta((2, 4), f32)))
    pair(aten.bmm.default, (meta((2, 3, 2), f32), meta((1, 2, 4), f32)), (meta((2, 3, 2), f32), meta((2, 2, 4), f32)))
    pair(aten.baddbmm.default, (meta((3, 4), f32), meta((2, 2, 2), f32), meta((2, 2, 4), f32)),
         (meta((2, 4), f32), meta((2, 2, 2), f32), meta((2, 2, 4), f32)))
    for func in REDUCTIONS:
        pair(func, (x, [1, -3], False), (x, [1, -2], False))
        pair(func, (x, [4], True), (x, [3], True))
    pair(aten.roll.default, (x, [1, 2], [0]), (x, [1, 2], [0, 1]))
    pair(aten.roll.default, (x, [1], [4]), (x, [1], [3]))
    pair(aten._log_softmax.default, (x, 4, False), (x, 3, False))  # _softmax's kernel takes dim 4 (the rule does not)
    pair(aten._safe_softmax.default, (x, -5), (x, -4))


def test_a_0_dim_operand_is_its_own_signature():
    """Type promotion tells 0-dim tensors from others: float32 with a float64 of one element is float64, with a
    0-dim float64 it stays float32; dtypes learnt from the one never serve the other."""
    one, scalar, x = meta((1,), torch.float64), meta((), torch.float64), meta((2, 3), torch.float32)
    assert aten.add.Tensor(x, one).dtype == torch.float64 and aten.add.Tensor(x, scalar).dtype == torch.float32
    check(aten.add.Tensor, (x, scalar), {}, ((x, one), {}))


def test_the_rules_answer_the_calls_that_cost_the_most():
    """Not declining everything: the calls a ConvNeXt, a MobileNet and a ViT make are answered (and exact)."""
    x, c = meta((1, 64, 56, 56), torch.float32), meta((64,), torch.float32)
    tokens, w = meta((1, 197, 768), torch.float32), meta((768,), torch.float32)
    nhwc = meta((1, 64, 56, 56), torch.float32).permute(0, 2, 3, 1)
    calls = [
        (aten.hardswish.default, (x,), {}),
        (aten.hardswish_.default, (x,), {}),
        (aten.add.Tensor, (x, meta((64, 1, 1), torch.float32)), {}),
        (aten.mul.Scalar, (x, 0.5), {}),
        (aten.native_batch_norm.default, (x, c, c, c, c, False, 0.1, 1e-5), {}),
        (aten._native_batch_norm_legit_no_training.default, (x, c, c, c, c, 0.1, 1e-5), {}),
        (aten.native_layer_norm.default, (tokens, [768], w, w, 1e-6), {}),
        (aten.native_layer_norm.default, (nhwc, [64], c, c, 1e-6), {}),
        (aten.native_group_norm.default, (x, c, c, 1, 64, 3136, 8, 1e-5), {}),
        (aten.addmm.default, (w, meta((197, 768), torch.float32), meta((768, 768), torch.float32).t()), {}),
        (aten.bmm.default, (meta((12, 197, 64), torch.float32), meta((12, 197, 64), torch.float32).mT), {}),
        (aten.mean.dim, (x, [2, 3], True), {}),
        (aten._safe_softmax.default, (meta((1, 12, 197, 197), torch.float32), -1), {}),
        (aten.convolution.default, (x, meta((64, 1, 3, 3), torch.float32), None, [1, 1], [1, 1], [1, 1], False,
                                    [0, 0], 64), {}),
        (aten.roll.default, (nhwc.contiguous(), [-3, -3], [1, 2]), {}),
    ]
    for func, args, kwargs in calls:
        assert check(func, args, kwargs, (args, kwargs)), func


# ------------------------------------------------------------------ whole traces: the same OpGraph


def mobilenet():
    from convaudit.importers.targets import load_torchvision

    return load_torchvision().models.mobilenet_v3_small(), (3, 64, 64)


class ViTBlock(nn.Module):
    """timm's attention, written out: the batch moved by a reshape and a permute, a scaled softmax."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.heads = heads

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attention = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(dim=-1)
        x = x + self.proj((attention @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.ones(dim))
        self.group = nn.GroupNorm(2, dim)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.mlp(self.norm(y))
        return self.group(x + y.permute(0, 3, 1, 2)).mean((2, 3), keepdim=True).relu_() * x


SMALL_MODELS = {"mobilenet_v3_small": mobilenet,
                "vit-block": lambda: (nn.Sequential(nn.Linear(16, 16), ViTBlock(), ViTBlock()), (5, 16)),
                "convnext-block": lambda: (nn.Sequential(ConvNeXtBlock(), ConvNeXtBlock()), (8, 9, 9))}


@pytest.mark.parametrize("make", SMALL_MODELS.values(), ids=SMALL_MODELS.keys())
def test_traces_are_the_same_with_and_without_the_rules(make, monkeypatch):
    from convaudit.importers.trace import trace

    model, shape = make()
    graphs = []
    answered = []
    original = FastMeta.run

    def counting(self, func, args, kwargs):
        out = original(self, func, args, kwargs)
        answered.append(self.answered)
        return out

    monkeypatch.setattr(FastMeta, "run", counting)
    for fast in (False, True):
        monkeypatch.setattr(metacache, "FAST", fast)
        metacache._ANSWERS.clear()
        graphs.append(trace(model, shape))
    assert max(answered) > 0  # the rules answered calls
    assert graphs[0] == graphs[1]
