"""Recurrent operators (aten lstm, gru, rnn_tanh, rnn_relu): traced as one operator, read as one layer.

nn.LSTM, nn.GRU and nn.RNN call one ATen operator each, with CompositeImplicitAutograd kernels: run through them,
a call unrolls into a linear and a few element-wise operators per step, layer and direction (Sequencer's
bidirectional LSTMs make over 20,000). The tracer records each call as one operator instead, its outputs' metadata
made from its arguments (`meta_outputs`: shapes, dtype, strides as ATen's kernel gives them); the reader
(importers/aten_recurrent.py) makes one layer of the family's type. A PackedSequence (the `.data` overloads) is
refused, named.
"""

from __future__ import annotations

from typing import Any

LAYER_TYPES = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "rnn", "rnn_relu": "rnn"}  # ATen packet -> layer type


def meta_outputs(torch: Any, overload: str, names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[Any, ...] | str:
    """The call's outputs as meta tensors, from its arguments alone: the sequence output [T, N, D·H_out]
    (transposed to [N, T, D·H_out] with batch_first, as ATen returns it), h_n [L·D, N, H_out] and, for LSTM,
    c_n [L·D, N, H]; or why it cannot be read."""
    if not overload.endswith(".input"):
        return "a PackedSequence (pack_padded_sequence) runs a different number of steps per sequence: convaudit " \
               "counts padded sequences only"
    named = dict(zip(names, args, strict=False)) | kwargs
    x, hx, weights = named["input"], named["hx"], named["params"]
    states = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    if x.dim() != 3 or any(state.dim() != 3 for state in states) or not weights:
        return f"expects a 3-D input and states, got {list(x.shape)} and {[list(s.shape) for s in states]}"
    first = bool(named.get("batch_first"))
    steps, batch = (x.shape[1], x.shape[0]) if first else (x.shape[0], x.shape[1])
    directions = 2 if named.get("bidirectional") else 1
    if weights[0].dim() != 2 or weights[0].shape[1] != x.shape[-1] or states[0].shape[1] != batch:
        return (f"input {list(x.shape)} does not fit the weights {list(weights[0].shape)} and the state "
                f"{list(states[0].shape)}")
    output = torch.empty((steps, batch, directions * states[0].shape[-1]), dtype=x.dtype, device="meta")
    made = [output.transpose(0, 1) if first else output]
    made += [torch.empty(tuple(state.shape), dtype=x.dtype, device="meta") for state in states]
    return tuple(made)
