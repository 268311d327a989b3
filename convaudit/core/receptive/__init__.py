"""Receptive fields, per spatial axis, and the input pixels each output really depends on.

    fields.py         the recurrence: rf, jump and the first field's centre per layer and axis (LayerField)
    layout.py         where the spatial axes live in each tensor, and how each layer reads its inputs along them
    resampling.py     what transposed convolutions, up-sampling, pixel shuffle and padding read per output
    interpolation.py  PyTorch's up-sampling source indices, in its own float arithmetic
    supports.py       the exact first and last input pixel of every output (Unseen px)
"""

from convaudit.core.receptive.fields import (
    AxisField,
    LayerField,
    adaptive_lengths_and_steps,
    receptive_fields,
    show,
    show_axes,
)
from convaudit.core.receptive.layout import layouts
from convaudit.core.receptive.supports import Supports

__all__ = ["AxisField", "LayerField", "Supports", "adaptive_lengths_and_steps", "layouts", "receptive_fields", "show",
           "show_axes"]
