"""`summary --format json/csv` and `rf --format json`: the analysis as data, every number exact (an int, or a
fraction as its decimal where it ends, else "p/q"), JSON written with json's own escaping."""

from __future__ import annotations

import csv
import io
import json
from fractions import Fraction
from json.encoder import encode_basestring as _json_string  # json's own escaping (C) for ensure_ascii=False
from typing import Any

from convaudit.core.analysis import TOTAL_FIELDS, LayerResult, Report, conventions, gc_paused, not_counted, totals_of
from convaudit.core.groups import main_and_side
from convaudit.core.layers.base import LEADING
from convaudit.core.memory import Memory
from convaudit.core.receptive import LayerField
from convaudit.core.windows import format_fraction
from convaudit.errors import printable
from convaudit.render.formatting import csv_shape
from convaudit.render.summary import View


def json_number(value: Fraction | int) -> int | float | str:
    """Exact in JSON: an int, a float when it is a whole number of halves or quarters, else 'p/q'."""
    if type(value) is int:
        return value
    if type(value) is not Fraction:
        value = Fraction(value)
    if value.denominator == 1:
        return value.numerator
    if value.denominator in (2, 4, 8):
        return float(value)
    return f"{value.numerator}/{value.denominator}"


def memory_dict(memory: Memory) -> dict[str, Any]:
    return {"dtype": memory.dtype, "batch": memory.batch, "optimizer": memory.optimizer,
            "params_bytes": memory.params, "gradients_bytes": memory.gradients,
            "optimizer_state_bytes": memory.optimizer_state, "saved_activations_bytes": memory.saved_activations,
            "training_total_bytes": memory.training_total, "inference_peak_activation_bytes": memory.inference_peak,
            "inference_peak_layer": memory.inference_peak_layer, "inference_total_bytes": memory.inference_total,
            **training_extras(memory)}


def training_extras(memory: Memory) -> dict[str, Any]:
    """--amp and --checkpoint's figures, when either is given (absent otherwise)."""
    extras: dict[str, Any] = {}
    if memory.amp:
        extras["amp"] = memory.amp
    if memory.checkpoint:
        extras.update({"checkpoint": memory.checkpoint, "checkpoint_segments": memory.segments,
                       "recompute_peak_bytes": memory.recompute_peak, "recompute_segment": memory.recompute_segment,
                       "recompute_flops": memory.recompute_flops, "recompute_other_ops": memory.recompute_other_ops})
    return extras


def report_dict(view: View) -> dict[str, Any]:
    """The JSON contract of `summary --format json`."""
    report = view.report
    return {
        "name": report.spec.name,
        "variant": report.spec.variant,
        "title": report.spec.title,
        "source": report.spec.source,
        "input": list(report.input),
        "batch": report.batch,
        "dtype": report.dtype,
        "conventions": conventions(report),
        "layers": [{**layer_dict(layer), **field_dict(view.fields[layer.name]),
                    "saved_bytes": view.memory.saved_by_layer[layer.name]} for layer in report.layers],
        "totals": {name: getattr(report.totals, name) for name in TOTAL_FIELDS},
        "not_counted": [{"layer": layer.name, "op": layer.spec.params.get("op", layer.type)}
                        for layer in not_counted(report)] + untraced_dict(report),
        "memory": memory_dict(view.memory),
        **parts_dict(report),
    }


def untraced_dict(report: Report) -> list[dict[str, Any]]:
    """What an imported model's trace never reached, as a `not_counted` entry of no layer."""
    untraced = report.spec.untraced
    if untraced is None:
        return []
    return [{"layer": None, "op": untraced.op, "module": untraced.module, "reason": untraced.reason,
             "unreached": list(untraced.unreached), "note": untraced.describe()}]


def field_dict(field: LayerField) -> dict[str, Any]:
    return {"rf": [json_number(v) for v in field.rf], "jump": [json_number(v) for v in field.jump],
            "rf_start": [json_number(v) for v in field.start],
            "uncovered": None if field.uncovered is None else list(field.uncovered),
            "rf_notes": list(field.notes)}


def parts_dict(report: Report) -> dict[str, Any]:
    """Main-path and side-output totals, when the network has side outputs (auxiliary classifiers)."""
    main, side = main_and_side(report)
    if not side:
        return {}
    return {"parts": {"main": {name: getattr(totals_of(main), name) for name in TOTAL_FIELDS},
                      "side": {name: getattr(totals_of(side), name) for name in TOTAL_FIELDS},
                      "side_outputs": list(report.spec.outputs[1:])}}


def layer_dict(layer: LayerResult) -> dict[str, Any]:
    fields = {
        "name": layer.name,
        "type": layer.type,
        "inputs": list(layer.spec.inputs),
        "blocks": [instance for instance, _ in layer.spec.blocks],
        "input_shape": list(layer.input_shapes[0]) if layer.input_shapes else [],
        "input_shapes": [list(shape) for shape in layer.input_shapes],
        "output_shape": list(layer.output_shape),
        "params": layer.params,
        "weights": layer.weights,
        "biases": layer.biases,
        "trainable_params": layer.trainable_params,
        "non_trainable_params": layer.non_trainable_params,
        "buffers": layer.buffers,
        "macs": layer.macs,
        "flops": layer.flops,
        "backward_flops": layer.backward_flops,
        "other_ops": layer.other_ops,
        "neurons": layer.neurons,
        "connections": layer.connections,
        "activations": layer.activations,
        "param_bytes": layer.param_bytes,
        "activation_bytes": layer.activation_bytes,
        "exact": layer.exact,
        "divisions": [
            {"axis": axis.axis, "formula": axis.formula(), "value": format_fraction(axis.exact),
             "rounding": "ceil" if axis.ceil else "floor", "out": axis.out}
            for axis in layer.windows
        ],
    }
    placement = layer.outcome.placement
    if placement != LEADING:  # where tensor code moved the batch (its own dimension, or folded into one)
        at = list(fields).index("output_shape") + 1
        items = list(fields.items())
        items.insert(at, ("batch_placement", {"dim": placement.dim, "folded": placement.folded}))
        fields = dict(items)
    return fields


def summary_json(view: View) -> str:
    """`json.dumps(report_dict(view), indent=2, ensure_ascii=False)`, character for character, written by
    `indented_json` (the standard library indents in pure Python, a third of a deep chain's time)."""
    with gc_paused():  # the receptive fields and memory are computed here too, on first use
        return indented_json(report_dict(view))


def indented_json(value: Any) -> str:
    """What `json.dumps(value, indent=2, ensure_ascii=False)` writes, with fewer calls per value: strings go
    through the same (C) escaping, ints and floats through the same repr; anything else is left to json."""
    out: list[str] = []
    _indented(value, "", out)
    return "".join(out)


def _indented(value: Any, pad: str, out: list[str]) -> None:
    kind = type(value)
    if kind is dict:
        if not value:
            out.append("{}")
            return
        inner = pad + "  "
        keys = _KEYS.get(inner)
        if keys is None:
            keys = _KEYS[inner] = {}
        first, mark = True, len(out)
        for key, item in value.items():
            prefix = keys.get(key)
            if prefix is None:
                if type(key) is not str:  # json turns 1, 2.5, True and None into keys its own way
                    del out[mark:]
                    out.append(json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + pad))
                    return
                prefix = keys[key] = ",\n" + inner + _json_string(key) + ": "
            out.append("{" + prefix[1:] if first else prefix)
            first = False
            kind = type(item)
            if kind is int:
                out.append(int.__repr__(item))
            elif kind is str:
                out.append(_json_string(item))
            else:
                _indented(item, inner, out)
        out.append("\n" + pad + "}")
    elif kind is list or kind is tuple:
        if not value:
            out.append("[]")
            return
        inner = pad + "  "
        if all(type(item) is int for item in value):
            out.append("[\n" + inner + (",\n" + inner).join(map(int.__repr__, value)) + "\n" + pad + "]")
            return
        separator = "[\n" + inner
        for item in value:
            out.append(separator)
            separator = ",\n" + inner
            _indented(item, inner, out)
        out.append("\n" + pad + "]")
    elif kind is str:
        out.append(_json_string(value))
    elif kind is int:
        out.append(int.__repr__(value))
    elif value is None or value is True or value is False:
        out.append("null" if value is None else "true" if value else "false")
    else:  # floats (NaN and infinities spelled as json spells them), subclasses, unknown types: json decides
        out.append(json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + pad))


_KEYS: dict[str, dict[str, str]] = {}  # ',\n' + indentation + '"key": ', per indentation and key, made once



def rf_json(view: View) -> str:
    report = view.report
    return json.dumps({"name": report.spec.name, "variant": report.spec.variant, "input": list(report.input),
                       "conventions": {"coordinates": "network-input pixels, pixel i centred at i",
                                       "rf": "field size in input pixels", "jump": "pixels between neighbouring "
                                       "outputs", "rf_start": "centre of the first output's field",
                                       "uncovered": "input pixels no output of the layer depends on"},
                       "layers": [{"name": layer.name, "type": layer.type, "output_shape": list(layer.output_shape),
                                   **field_dict(view.fields[layer.name])} for layer in report.layers]},
                      indent=2, ensure_ascii=False)


CSV_FIELDS = ("name", "type", "input_shape", "output_shape", "params", "weights", "biases", "trainable_params",
              "non_trainable_params", "buffers", "macs", "flops", "backward_flops", "other_ops", "neurons",
              "connections", "activations", "param_bytes", "activation_bytes", "exact")


def summary_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for layer in report.layers:
        row = layer_dict(layer)
        writer.writerow([csv_shape(row[f]) if f.endswith("shape") else printable(str(row[f])) if f in ("name", "type")
                         else row[f] for f in CSV_FIELDS])
    totals = report.totals
    writer.writerow(["TOTAL", "", csv_shape(report.input), ""] + [
        getattr(totals, f) if f in TOTAL_FIELDS else "" for f in CSV_FIELDS[4:]])
    return buffer.getvalue()
