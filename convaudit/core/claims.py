"""Claims a source states about a network, checked against the analysis with the arithmetic shown.

A spec's `claims:` is a mapping from what is claimed to the stated value, or a list:

    claims:
      params: {value: 60e6, tol: 5%, source: "abstract: 60 million parameters"}
      conv1.shape: [96, 55, 55]
      - {claim: conv1.shape, value: [96, 55, 55], at: 224, source: "blog: 224 input gives 55×55"}

What is claimed is a network quantity (params, neurons, connections, depth, …),
`layer.quantity` (conv1.shape, C3.connections) or `block.quantity` (a sum over
the block's layers, inception3a.macs). `tol` is relative ("5%") or absolute (a
number); without it the value must match exactly. `at` evaluates the claim at
another input size, `variant` on a variant of the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from convaudit.core.analysis import LayerResult, Report, analyze
from convaudit.core.layers import REGISTRY
from convaudit.core.model import INPUT, NetworkSpec
from convaudit.core.receptive import receptive_fields, show
from convaudit.core.windows import WindowAxis, merged_axes
from convaudit.errors import Where

NETWORK_QUANTITIES = ("params", "trainable_params", "non_trainable_params", "buffers", "weights", "biases", "macs",
                      "flops", "backward_flops", "other_ops", "neurons", "connections", "activations", "depth",
                      "input_elements")
LAYER_QUANTITIES = ("shape", "channels", "params", "trainable_params", "buffers", "weights", "biases", "macs", "flops",
                    "neurons", "connections", "activations", "rf")
CLAIM_KEYS = ("claim", "value", "tol", "source", "at", "variant", "note")


@dataclass(frozen=True)
class Claim:
    target: str
    layer: str | None  # a layer or block name; None for the whole network
    quantity: str
    value: Fraction | tuple[int, ...]
    tolerance: Fraction | None  # absolute
    relative: Fraction | None  # a share of the stated value
    source: str
    at: tuple[int, int] | None
    variant: str | None
    where: Where


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    computed: int | tuple[int, ...] | None
    holds: bool
    difference: str
    arithmetic: str



def audit(spec: NetworkSpec, load_variant: Any = None) -> list[Verdict]:
    """Every claim of `spec`, each evaluated at its own input size and variant."""
    reports: dict[tuple[Any, Any], Report] = {}
    verdicts = []
    for claim in spec.claims:
        key = (claim.at, claim.variant)
        if key not in reports:
            network = load_variant(claim.variant) if claim.variant else spec
            reports[key] = analyze(network.with_input(*claim.at) if claim.at else network)
        verdicts.append(evaluate(claim, reports[key]))
    return verdicts


def evaluate(claim: Claim, report: Report) -> Verdict:
    computed, arithmetic = compute(claim, report)
    if computed is None:
        return Verdict(claim, None, False, "cannot be computed", arithmetic)
    if isinstance(claim.value, tuple) or isinstance(computed, tuple):
        holds = computed == claim.value
        difference = "" if holds else f"{_fmt(computed)} instead of {_fmt(claim.value)}"
        return Verdict(claim, computed, holds, difference, arithmetic)
    stated = claim.value
    gap = Fraction(computed) - stated
    allowed = claim.tolerance if claim.tolerance is not None else (
        abs(stated) * claim.relative if claim.relative is not None else Fraction(0))
    holds = abs(gap) <= allowed
    share = f" ({float(gap / stated) * 100:+.1f}%)" if stated else ""
    difference = "exact" if gap == 0 else f"{_fmt_number(gap, signed=True)}{share}"
    return Verdict(claim, computed, holds, difference, arithmetic)


def compute(claim: Claim, report: Report) -> tuple[int | tuple[int, ...] | None, str]:
    """The analysis's value of the claimed quantity, and how it comes about."""
    if claim.layer is None:
        return _network(claim.quantity, report)
    layers = [layer for layer in report.layers
              if layer.name == claim.layer or layer.name.startswith(claim.layer + report.spec.separator)]
    if not layers:
        reason = f"; analysis stopped at {report.halted.layer.name}: {report.halted.problem.message}" \
            if report.halted else ""
        return None, f"{claim.layer} was not reached{reason}"
    if len(layers) == 1 and layers[0].name == claim.layer:
        return _layer(claim.quantity, layers[0], report)
    return _block(claim.quantity, claim.layer, layers)


def _network(quantity: str, report: Report) -> tuple[int | None, str]:
    if quantity == "input_elements":
        c, h, w = report.input
        return c * h * w, f"{c}·{h}·{w} = {c * h * w:,}"
    if quantity == "depth":
        path = longest_weight_path(report)
        return len(path), f"{len(path)} weight layers on the longest path: {', '.join(path)}"
    per_sample = quantity in ("activations", "macs", "flops", "backward_flops", "other_ops")
    contributions = [(layer.name, getattr(layer, quantity) // (layer.batch if per_sample else 1))
                     for layer in report.layers]
    contributions = [(name, value) for name, value in contributions if value]
    total = sum(value for _, value in contributions)
    shown = " + ".join(f"{name} {value:,}" for name, value in contributions[:8])
    more = f" + {len(contributions) - 8} more layers" if len(contributions) > 8 else ""
    stopped = f" (analysis stopped at {report.halted.layer.name})" if report.halted else ""
    return total, f"{shown}{more} = {total:,}{stopped}"


def _block(quantity: str, name: str, layers: list[LayerResult]) -> tuple[int | tuple[int, ...] | None, str]:
    if quantity == "shape":
        return layers[-1].output_shape, f"{name} ends in {layers[-1].name}: {_fmt(layers[-1].output_shape)}"
    if quantity == "channels":
        return layers[-1].output_shape[0], f"{name} ends in {layers[-1].name} with {layers[-1].output_shape[0]}"
    if quantity == "rf":
        return None, "claim the receptive field of one layer, not of a block"
    per_sample = quantity in ("activations", "macs", "flops")
    parts = [(layer.name, _layer_value(quantity, layer) // (layer.batch if per_sample else 1)) for layer in layers]
    parts = [(n, v) for n, v in parts if v]
    total = sum(v for _, v in parts)
    return total, f"{name}: " + " + ".join(f"{n.removeprefix(name)[1:]} {v:,}" for n, v in parts) + f" = {total:,}"


def _layer_value(quantity: str, layer: LayerResult) -> int:
    if quantity == "activations":
        return layer.activations
    return getattr(layer, quantity)


def _layer(quantity: str, layer: LayerResult, report: Report) -> tuple[int | tuple[int, ...] | None, str]:
    batch = layer.batch
    if quantity == "shape":
        return layer.output_shape, shape_arithmetic(layer, report)
    if quantity == "channels":
        shape = layer.output_shape
        if len(shape) in (1, 3):  # [C, H, W] or [F]
            return shape[0], f"{layer.name} gives {shape[0]} channels ({layer.type})"
        return shape[0], (f"{layer.name} ({layer.type}) gives {_fmt(shape)}: its first dimension, {shape[0]}, "
                          f"taken as channels (for [N, D] tokens that is N, not D = {shape[-1]})")
    if quantity == "rf":
        field = receptive_fields(report)[layer.name]
        rf = field.rf
        value = int(rf[0]) if rf[0] == rf[1] and rf[0].denominator == 1 else None
        return value, f"receptive field {show(rf[0])}×{show(rf[1])} (jump {show(field.jump[0])})"
    if quantity in ("params", "trainable_params", "weights", "biases"):
        return getattr(layer, quantity), weight_arithmetic(layer, quantity)
    if quantity == "buffers":
        return layer.buffers, (f"{layer.buffers:,} running statistics (mean and variance), buffers, not parameters"
                               if layer.buffers else f"{layer.name} ({layer.type}) keeps no running statistics")
    if quantity in ("macs", "flops"):
        value = getattr(layer, quantity) // batch
        return value, mac_arithmetic(layer) + (f"; FLOPs = 2 × {layer.macs // batch:,}" if quantity == "flops"
                                               else "")
    if quantity == "neurons":
        shape = layer.output_shape
        if not layer.neurons:
            return 0, (f"{layer.name} ({layer.type}) does no multiply-adds: its outputs are not counted as neurons"
                       + (" (its weights scale, shift or embed)" if layer.weights else ""))
        return layer.neurons, f"{'·'.join(map(str, shape))} output units = {layer.neurons:,}"
    if quantity == "connections":
        return layer.connections, connection_arithmetic(layer)
    if quantity == "activations":
        return layer.activations // batch, f"{'·'.join(map(str, layer.output_shape))} = {layer.activations // batch:,}"
    raise AssertionError(quantity)  # every quantity is parsed against LAYER_QUANTITIES


def shape_arithmetic(layer: LayerResult, report: Report) -> str:
    own = "; ".join(f"{w.axis}: {w.formula()}" + (_rounding(w) if not w.is_exact else "")
                    for w in merged_axes(layer.windows))
    text = f"{layer.name}: {own}" if own else f"{layer.name} ({layer.type}) gives {_fmt(layer.output_shape)}"
    upstream = [name for name in layer.inexact_upstream if name != layer.name]
    if upstream:
        causes = []
        for name in upstream[:3]:
            earlier = report.layer(name)
            causes.append("; ".join(f"{name} {w.formula()} → {w.out}" for w in merged_axes(earlier.windows)
                                    if not w.is_exact))
        text += f", after {', '.join(causes)}"
    return text


def _rounding(w: WindowAxis) -> str:
    if w.ceil:
        return f" → {w.out} (ceil: true rounds up)"
    return f" → {w.out} (PyTorch floors; rounding up, Caffe's rule for pooling only, would give {w.ceil_rounded().out})"


def weight_arithmetic(layer: LayerResult, quantity: str) -> str:
    weights = REGISTRY[layer.type].explain(layer).weights
    if weights is None:
        return f"{layer.name} ({layer.type}) has no parameters"
    biases = f" + {layer.biases:,} biases" if layer.biases else ""
    fixed = " (fixed, not trained)" if layer.outcome.fixed else ""
    if quantity == "weights":
        return weights + fixed
    if quantity == "biases":
        return f"{layer.biases:,} biases"
    total = layer.trainable_params if quantity == "trainable_params" else layer.params
    return f"{weights}{biases}{fixed} = {total:,}"


def mac_arithmetic(layer: LayerResult) -> str:
    macs = REGISTRY[layer.type].explain(layer).macs
    if macs is None:
        return f"{layer.name} ({layer.type}) does no multiply-adds (other ops: {layer.other_ops // layer.batch:,})"
    return macs


def connection_arithmetic(layer: LayerResult) -> str:
    connections = REGISTRY[layer.type].explain(layer).connections
    if connections is None:
        return f"{layer.name} ({layer.type}) does no multiply-adds: no connections counted"
    return connections


def longest_weight_path(report: Report) -> list[str]:
    """The layers that do multiply-adds (conv, linear, subsample, RBF, attention) on the longest path from input to
    the main output: the papers' weight layers (normalisation, scale and embedding weights do not count)."""
    best: dict[str, list[str]] = {INPUT: []}
    for layer in report.layers:
        longest = max((best[source] for source in layer.spec.inputs), key=len)
        best[layer.name] = longest + ([layer.name] if REGISTRY[layer.type].has_macs else [])
    main = report.spec.outputs[0] if report.spec.outputs and report.spec.outputs[0] in best else \
        report.layers[-1].name
    return best[main]


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "×".join(str(v) for v in value)
    return _fmt_number(value)


def _fmt_number(value: Fraction | int, signed: bool = False) -> str:
    value = Fraction(value)
    if value.denominator == 1:
        return f"{value.numerator:+,}" if signed else f"{value.numerator:,}"
    return f"{float(value):+,.4g}" if signed else f"{float(value):,.6g}"


def describe_stated(claim: Claim) -> str:
    if isinstance(claim.value, tuple):
        return _fmt(claim.value)
    tolerance = ""
    if claim.relative is not None:
        tolerance = f" ± {float(claim.relative * 100):g}%"
    elif claim.tolerance is not None:
        tolerance = f" ± {_fmt_number(claim.tolerance)}"
    return f"{_fmt_number(claim.value)}{tolerance}"


def describe_computed(verdict: Verdict) -> str:
    return "—" if verdict.computed is None else _fmt(verdict.computed)
