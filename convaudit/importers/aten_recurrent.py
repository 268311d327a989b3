"""Recurrent operators read into layers: one `lstm`, `gru` or `rnn` layer per call (importers/recurrent.py keeps the
call whole in the trace), its flat weights (`params`) claimed once, checked against nn's shapes."""

from __future__ import annotations

from typing import Any

from convaudit.core.layers import REGISTRY
from convaudit.importers import opgraph as g
from convaudit.importers.aten import handles, weights_as_held
from convaudit.importers.reader import Const, Decline, Learned, Reader
from convaudit.importers.recurrent import LAYER_TYPES

RESULTS = ("output", "h_n", "c_n")  # the operator's outputs, in order


@handles(*LAYER_TYPES)
def recurrent(reader: Reader, node: g.OpNode) -> None:
    a = node.args
    x = reader.act(a["input"])
    type_name = LAYER_TYPES[node.packet]
    states = a["hx"] if isinstance(a["hx"], list) else [a["hx"]]
    if not all(isinstance(reader.value(ref), Const) for ref in states):
        raise Decline("an initial state (hx) the model computes or learns: convaudit's recurrent layers start from "
                      "zeros")
    learned: list[Any] = [reader.value(ref) for ref in a["params"]]
    if not all(isinstance(value, Learned) and weights_as_held(reader, value) for value in learned):
        raise Decline("weights computed in forward (not the module's own parameters)")
    layer_type: Any = REGISTRY[type_name]
    hidden = learned[0].rec.shape[0] // layer_type.gates  # W_ih of the first layer: [G·H, I]
    out = reader.graph.tensor(states[0]).shape[-1]
    params: dict[str, Any] = {"hidden": hidden}
    if a["num_layers"] != 1:
        params["layers"] = int(a["num_layers"])
    for key in ("bidirectional", "batch_first"):
        if a[key]:
            params[key] = True
    if not a["has_biases"]:
        params["bias"] = False
    if a["dropout"]:
        params["dropout"] = float(a["dropout"])
    if out != hidden:
        params["proj_size"] = out
    if node.packet == "rnn_relu":
        params["nonlinearity"] = "relu"
    results = g.refs_in(node.outputs)
    used = [index for index, ref in enumerate(results) if ref.id in reader.used_ids]
    if len(used) > 1:
        raise Decline(f"the model reads {' and '.join(RESULTS[i] for i in used)} of one call: convaudit's "
                      f"{type_name} layer is one of them")
    returns = used[0] if used else 0
    if returns:
        params["returns"] = RESULTS[returns]
    full = {field.name: field.default for field in layer_type.fields} | params  # as the spec will parse it
    expected = layer_type.parameter_shapes([reader.sample(x.rec)], full)
    if tuple(value.rec.shape for value in learned) != tuple(expected):
        raise Decline(f"weights of shapes {[list(v.rec.shape) for v in learned]} are not nn's")
    reader.emit(node, type_name, params, [x], tuple(learned), out=reader.graph.tensor(results[returns]))
    if returns:  # the module's first result is the sequence output: this layer is not that call's output
        reader.layers[-1].leaf = False
