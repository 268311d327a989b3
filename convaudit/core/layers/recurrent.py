"""Recurrent layers: nn.LSTM, nn.GRU and nn.RNN, one family with one formula, as ATen's RNN.cpp runs them.

Every layer l and direction runs T steps. A step multiplies its input x_t (I_l features: the layer's input for
l = 0, the D·H_out joined directions of the layer below after) by W_ih [G·H, I_l] and the previous hidden state
h_{t−1} (H_out features: H, or LSTM's proj_size P) by W_hh [G·H, H_out], G gates each (LSTM 4, GRU 3, RNN 1);
an LSTM with a projection then maps its H-wide hidden state to P by W_hr [P, H]:

    MACs per sequence  = T · D · Σ_l (G·H·(I_l + H_out) + P·H)        the mm's FlopCounterMode counts
    parameters         = D · Σ_l (G·H·I_l + G·H·H_out + P·H) weights, D·L·2·G·H biases (b_ih and b_hh)

Each step's element-wise work, per hidden unit (ATen's cells, in the order they run):
    LSTM  13: 4 gate adds (x·W_ihᵀ + h·W_hhᵀ), 3 sigmoids and a tanh, f·c, i·g, their add, tanh(c), o·tanh(c)
    GRU   10: 2 gate adds (r, z), 2 sigmoids, r·(h·W_hn), its add to x·W_in, tanh, h − n, · z, + n
    RNN    2: the gate add, tanh (or relu)
plus, with bias, the 2·G·H bias adds of the two products.

A sequence is one sample's [T, F] (batch_first: the batch leads, [B, T, F]; else [T, B, F], the batch at
dimension 1); a batch folded into the sequence dimension (Sequencer's B·W columns) gives n sequences per sample.
The layer yields one of the call's results, `returns`: the sequence output [T, D·H_out], or h_n [L·D, H_out]
(c_n [L·D, H] for LSTM), whose batch sits at dimension 1 whatever batch_first says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from convaudit.core.fields import Bool, Choice, Field, Int, Number
from convaudit.core.layers.base import (
    LOWER_PRECISION,
    Autocast,
    Explained,
    LayerProblem,
    LayerType,
    Outcome,
    Params,
    Placement,
    References,
    Saved,
    Saving,
    Shape,
    Tensor,
    full_shape,
    register,
)
from convaudit.core.layers.splitting import not_split_by_channels
from convaudit.core.strides import Strided, contiguous, view_strides

if TYPE_CHECKING:
    from convaudit.core.analysis import LayerResult
    from convaudit.core.model import LayerSpec

MASK_BYTES_CUDA = 1  # dropout between layers keeps a bool mask on CUDA


@dataclass(frozen=True)
class Geometry:
    """One recurrent layer at its input: everything its counts follow from."""

    sequences: int  # per sample: 1, or n where the batch is folded into the sequence dimension (B·n)
    steps: int  # T
    features: int  # I_0, the input's features
    hidden: int  # H
    out: int  # H_out: the projection P, or H
    projection: int  # P, 0 without
    layers: int  # L
    directions: int  # D: 2 when bidirectional
    gates: int  # G
    bias: bool

    def inputs(self) -> list[int]:
        """I_l: each layer's input features."""
        return [self.features] + [self.directions * self.out] * (self.layers - 1)

    def step_macs(self, features: int) -> int:
        """One step of one layer and direction: x·W_ihᵀ, h·W_hhᵀ and the projection."""
        return self.gates * self.hidden * (features + self.out) + self.projection * self.hidden

    @property
    def runs(self) -> int:
        """Steps of one direction, over every sequence of a sample."""
        return self.sequences * self.steps

    @property
    def macs(self) -> int:
        return self.runs * self.directions * sum(self.step_macs(features) for features in self.inputs())

    @property
    def weights(self) -> int:
        return self.directions * sum(self.gates * self.hidden * (features + self.out) + self.projection * self.hidden
                                     for features in self.inputs())

    @property
    def biases(self) -> int:
        return self.directions * self.layers * 2 * self.gates * self.hidden if self.bias else 0

    @property
    def bias_terms(self) -> int:
        """The bias adds of every step: b_ih and b_hh, G·H each."""
        return self.runs * self.directions * self.layers * 2 * self.gates * self.hidden if self.bias else 0

    @property
    def input_grad_macs(self) -> int:
        """dx of the first layer's input products, wanted only when the layer's input needs a gradient."""
        return self.runs * self.directions * self.gates * self.hidden * self.features

    @property
    def inner_grad_macs(self) -> int:
        """Gradients needed whenever any gradient flows: dh_{t−1} through W_hh (no step reads the zero initial
        state's), the projection's input, and the inputs of the layers above the first."""
        per_direction = self.layers * ((self.steps - 1) * self.gates * self.hidden * self.out
                                       + self.steps * self.projection * self.hidden)
        per_direction += self.steps * self.gates * self.hidden * sum(self.inputs()[1:])
        return self.sequences * self.directions * per_direction


class _Recurrent(LayerType):
    """The family: one formula, each type its gates and its cell's element-wise work per hidden unit."""

    gates: ClassVar[int]
    cell_ops: ClassVar[int]
    cell_state: ClassVar[bool] = False  # LSTM's c, beside h
    torch_name: ClassVar[str]
    category = "dense"
    plan_role = "whole"
    receptive = "opaque"  # step t reads steps ≤ t (both ways when bidirectional): not a window this model follows
    size_rule = "none"
    batch_rule = "own"
    has_macs = True
    max_inputs = 1
    # fvcore has no handle for aten::lstm, gru, rnn_tanh, rnn_relu: it names them unsupported and counts 0
    references = References("macs", flop_counter=True)
    split_notes = (("channels", "recurrent layers are not split by channels: each step's gates read the whole hidden "
                                "state of the step before"),)
    column_split = not_split_by_channels

    convention = ("LSTM, GRU, RNN: MACs = T · D · Σ layers G·H·(I + H_out) (+ P·H with a projection), the mm's "
                  "FlopCounterMode counts (G: 4, 3, 1); gate adds, nonlinearities and products are other ops.")

    @staticmethod
    def base_fields(returns: tuple[str, ...]) -> tuple[Field, ...]:
        return (
            Field("hidden", Int(), "hidden units H (hidden_size)", required=True),
            Field("layers", Int(), "stacked layers (num_layers)", default=1),
            Field("bidirectional", Bool(), "a second direction, run from the last step back", default=False),
            Field("batch_first", Bool(), "the input is [B, T, F] (true) or [T, B, F] (false, as nn.LSTM's default)",
                  default=False),
            Field("bias", Bool(), "the biases b_ih and b_hh", default=True),
            Field("dropout", Number(minimum=0, maximum=1, exclusive_maximum=True),
                  "dropout on each layer's output but the last, in training", default=0),
            Field("returns", Choice(*returns), "the result this layer is: the sequence output, or the last "
                                               "hidden state h_n" + (" or cell state c_n" if "c_n" in returns
                                                                     else ""), default="output"),
        )

    def static_problems(self, params: Params) -> list[tuple[str, str]]:
        projection = params.get("proj_size") or 0
        if projection and projection >= params["hidden"]:
            return [("proj_size", f"proj_size {projection} must be smaller than hidden {params['hidden']} "
                                  "(as nn.LSTM requires)")]
        return []

    # ------------------------------------------------------------------ shapes and counts

    def geometry_of(self, tensor: Tensor, params: Params) -> Geometry:
        """The geometry at this input: the sequence dimension must hold the batch (folded or not)."""
        first = params["batch_first"]
        runs_along = 0 if first else 1  # where nn's recurrent modules take their batch
        placement, shape = tensor.placement, tensor.shape
        rank = 3 if placement.folded else 2
        if placement.dim is None:
            raise LayerProblem("batch", f"{self.type_name} needs its input's batch: this tensor belongs to no sample")
        if placement.dim != runs_along:
            raise LayerProblem("batch", f"{self.type_name} with batch_first: {str(first).lower()} takes its batch at "
                                        f"dimension {runs_along} of [{'B, T, F' if first else 'T, B, F'}]; its input "
                                        f"has it at dimension {placement.dim}: samples would mix", "batch_first")
        if len(shape) != rank:
            raise LayerProblem("rank", f"{self.type_name} needs a sequence [T, F] per sample, got "
                                       f"{placement.describe(shape)}")
        # [T, F] per sample; folded, [n, T, F] (batch_first) or [T, n, F]: n sequences per sample
        sequences = shape[placement.dim] if placement.folded else 1
        steps = shape[1] if placement.folded and first else shape[0]
        projection = params.get("proj_size") or 0
        return Geometry(sequences, steps, shape[-1], params["hidden"], projection or params["hidden"], projection,
                        params["layers"], 2 if params["bidirectional"] else 1, self.gates, params["bias"])

    def apply_tensors(self, inputs: list[Tensor], params: Params) -> Outcome:
        tensor = inputs[0]
        geometry = self.geometry_of(tensor, params)
        shape, placement = self.result(tensor, geometry, params["returns"])
        return Outcome(shape=shape, placement=placement, weights=geometry.weights, biases=geometry.biases,
                       macs=geometry.macs, other_ops=geometry.runs * geometry.directions * geometry.layers
                       * self.cell_ops * geometry.hidden + geometry.bias_terms,
                       in_features=geometry.features, connections=geometry.macs + geometry.bias_terms,
                       input_grad_macs=geometry.input_grad_macs, inner_grad_macs=geometry.inner_grad_macs)

    @staticmethod
    def result(tensor: Tensor, geometry: Geometry, returns: str) -> tuple[Shape, Placement]:
        """The sample shape of the result returned, and where its batch sits."""
        folded = tensor.placement.folded
        if returns == "output":  # the input's shape with D·H_out features, the batch where it was
            return tensor.shape[:-1] + (geometry.directions * geometry.out,), tensor.placement
        size = geometry.out if returns == "h_n" else geometry.hidden
        stacked = geometry.layers * geometry.directions  # [L·D, B, size] whatever batch_first says
        return ((stacked, geometry.sequences, size) if folded else (stacked, size)), Placement(1, folded)

    def parameter_shapes(self, inputs: list[Shape], params: Params) -> tuple[Shape, ...]:
        # nn.LSTM's parameters() order: per layer, per direction: w_ih, w_hh, b_ih, b_hh, w_hr
        features, hidden = inputs[0][-1], params["hidden"]
        projection = params.get("proj_size") or 0
        out, directions = projection or hidden, 2 if params["bidirectional"] else 1
        shapes: list[Shape] = []
        for layer in range(params["layers"]):
            size = features if layer == 0 else directions * out
            for _ in range(directions):
                shapes += [(self.gates * hidden, size), (self.gates * hidden, out)]
                shapes += [(self.gates * hidden,), (self.gates * hidden,)] if params["bias"] else []
                shapes += [(projection, hidden)] if projection else []
        return tuple(shapes)

    # ------------------------------------------------------------------ memory

    def saved(self, layer: LayerResult, saving: Saving) -> list[Saved]:
        """What ATen's native kernel keeps (the one PyTorch runs for GRU and RNN on the CPU, and for LSTM where
        oneDNN is off; oneDNN's and cuDNN's workspaces are not modelled), per sequence of N = n·B:
        the input (the first direction multiplies all steps at once: a copy where [T·N, I] is not a view of it;
        a reverse direction reads each step's view), each upper layer's input and, with dropout, its mask; the
        zero initial states; and per layer and direction the tensors of every step (`_step_tensors`)."""
        tensor = Tensor(layer.input_shapes[0], layer.placements[0])
        geometry = self.geometry_of(tensor, layer.spec.params)
        n = geometry.sequences * saving.batch
        kept = self._first_input(layer, saving, geometry)
        above = geometry.steps * n * geometry.directions * geometry.out
        for index in range(1, geometry.layers):
            kept.append(saving.extra(f"input{index}", above))
            if layer.spec.params["dropout"]:
                kept.append(saving.extra(f"mask{index}", above, MASK_BYTES_CUDA if saving.cuda else None))
        stacks = geometry.layers * geometry.directions
        kept.append(saving.extra("h0", stacks * n * geometry.out))
        if self.cell_state:
            kept.append(saving.extra("c0", stacks * n * geometry.hidden))
        kept.append(saving.extra("steps", stacks * n * self._step_tensors(geometry)))
        return kept

    @staticmethod
    def _first_input(layer: LayerResult, saving: Saving, geometry: Geometry) -> list[Saved]:
        source = saving.storage(layer.spec.inputs[0])
        shape, strides = source.shape, source.strides
        if layer.spec.params["batch_first"]:  # ATen transposes to [T, N, I] first
            shape, strides = (shape[1], shape[0]) + shape[2:], (strides[1], strides[0]) + strides[2:]
        if view_strides(shape, strides, (shape[0] * shape[1], shape[-1])) is not None:
            return saving.inputs()[:1]
        copy = saving.extra("input", geometry.runs * saving.batch * geometry.features)
        return [copy] + (saving.inputs()[:1] if geometry.directions == 2 else [])

    def _step_tensors(self, geometry: Geometry) -> int:
        """Elements one sequence keeps for one layer and direction, beyond the initial states."""
        raise NotImplementedError

    def storage(self, layer: LayerResult, inputs: list[Strided]) -> Strided:
        shape = full_shape(layer)
        if layer.spec.params["returns"] == "output" and layer.spec.params["batch_first"]:
            stacked = contiguous((shape[1], shape[0]) + shape[2:])  # stacked as [T, N, F], then transposed
            return Strided(shape, (stacked[1], stacked[0]) + stacked[2:], layer.name)
        return Strided(shape, contiguous(shape), layer.name)

    def explain(self, layer: LayerResult) -> Explained:
        geometry = self.geometry_of(Tensor(layer.input_shapes[0], layer.placements[0]), layer.spec.params)
        g, h, p, d = geometry.gates, geometry.hidden, geometry.projection, geometry.directions
        projection = f" + {p}·{h}" if p else ""
        per_layer = " + ".join(f"{g}·{h}·({features} + {geometry.out}){projection}" for features in geometry.inputs())
        runs = f"{geometry.sequences}·{geometry.steps}" if geometry.sequences > 1 else f"{geometry.steps}"
        biases = f" + {layer.biases:,} biases" if layer.biases else ""
        macs = layer.outcome.macs
        return Explained(f"{d}·({per_layer}) = {layer.weights:,} weights{biases}",
                         f"{runs} steps × {d} direction{'s' if d > 1 else ''} × ({per_layer}) = {macs:,}",
                         f"{macs:,} multiply-adds + {geometry.bias_terms:,} bias terms = {layer.connections:,}")

    def module(self, lib: Any, layer: LayerSpec, inputs: tuple[Shape, ...], placements: tuple[Placement, ...]) -> Any:
        p = layer.params
        return lib.Recurrent(self.torch_name, inputs[0][-1], p["hidden"], p["layers"], p["bias"], p["batch_first"],
                             float(p["dropout"]), p["bidirectional"], p.get("proj_size") or 0,
                             p.get("nonlinearity", "tanh"), p["returns"])


@register
class LSTM(_Recurrent):
    type_name = "lstm"
    prefix = "lstm"
    gates = 4
    cell_ops = 13
    cell_state = True
    other_ops_rule = ("per step, layer and direction: 13·H (4 gate adds, 3 sigmoids and 2 tanh, f·c + i·g, "
                      "o·tanh(c)), plus 2·4·H bias adds (0 without bias)")
    torch_name = "LSTM"
    # oneDNN (CPU) and cuDNN (CUDA) run it in half, as autocast casts their kernels; with a projection, ATen's native
    # cell ends each step on the projection's product, in half too
    autocast = LOWER_PRECISION
    doc = ("long short-term memory over a sequence [T, F], as nn.LSTM: G = 4 gates, optionally a projection of "
           "the hidden state to proj_size")
    fields = (*_Recurrent.base_fields(("output", "h_n", "c_n")),
              Field("proj_size", Int(0), "project each hidden state to this many features (0: none)", default=0))

    def _step_tensors(self, geometry: Geometry) -> int:
        # per step: the 4·H gates (sigmoid and tanh in place), tanh(c), the state h·W_hr reads (projection);
        # from the second step on, h_{t−1} (W_hh's operand) and c_{t−1} (f·c's)
        h, t = geometry.hidden, geometry.steps
        return t * (5 * h + (h if geometry.projection else 0)) + (t - 1) * (geometry.out + h)


@register
class GRU(_Recurrent):
    type_name = "gru"
    prefix = "gru"
    gates = 3
    cell_ops = 10
    other_ops_rule = ("per step, layer and direction: 10·H (2 gate adds, 2 sigmoids, r·h_n and its add, tanh, "
                      "(h − n)·z + n), plus 2·3·H bias adds (0 without bias)")
    torch_name = "GRU"
    # Under autocast ATen's CPU cell multiplies in half, but its zero initial state is made at the input's dtype and
    # the element-wise steps promote to it: the output keeps the input's dtype. cuDNN runs in half (autocast's
    # _cudnn_rnn wrapper).
    autocast = Autocast(cuda=LOWER_PRECISION)
    doc = "gated recurrent unit over a sequence [T, F], as nn.GRU: G = 3 gates (reset, update, new)"
    fields = _Recurrent.base_fields(("output", "h_n"))

    def _step_tensors(self, geometry: Geometry) -> int:
        # per step: the 3·H hidden gates (r and z in place), the copy r·h_n keeps, n, the copy (h − n)·z keeps;
        # from the second step on, h_{t−1}
        h, t = geometry.hidden, geometry.steps
        return t * 6 * h + (t - 1) * h


@register
class RNN(_Recurrent):
    type_name = "rnn"
    prefix = "rnn"
    gates = 1
    cell_ops = 2
    other_ops_rule = ("per step, layer and direction: 2·H (the gate add, tanh or relu), plus 2·H bias adds (0 without "
                      "bias)")
    torch_name = "RNN"
    autocast = LOWER_PRECISION
    doc = "Elman recurrent network over a sequence [T, F], as nn.RNN: h_t = tanh (or relu) of x·W_ihᵀ + h·W_hhᵀ"
    fields = (*_Recurrent.base_fields(("output", "h_n")),
              Field("nonlinearity", Choice("tanh", "relu"), "the cell's nonlinearity", default="tanh"))

    def _step_tensors(self, geometry: Geometry) -> int:
        return geometry.steps * geometry.hidden  # each step's h_t: the nonlinearity's output, W_hh's next operand


__all__ = ["GRU", "LSTM", "RNN", "Geometry"]
