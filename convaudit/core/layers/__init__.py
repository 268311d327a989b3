"""Every layer type, one class each, in one registry (`REGISTRY`, keyed by the type's name in a spec).

The families live in their own modules; importing this package registers them all. `base` holds the registry,
the records a type returns and the traits every type declares.
"""

from __future__ import annotations

from convaudit.core.layers import (  # noqa: F401 (registers)
    activations,
    dense,
    normalisation,
    operators,
    products,
    recurrent,
    resample,
    structure,
    windowed,
)
from convaudit.core.layers.base import (
    CATEGORIES,
    PLAN_ROLES,
    REGISTRY,
    SYNONYMS,
    TRAITS,
    LayerProblem,
    LayerType,
    Outcome,
    Params,
    Shape,
    broadcast,
    describe_shape,
    elements,
    normalised_dim,
    register,
    undeclared_traits,
)
from convaudit.core.layers.windowed import adaptive_windows

# The order types are listed in (the JSON Schema, `convaudit schema`, error messages): the classic CNN layers
# first, then the operators of modern CNNs and ViT; types added later follow in registration order.
ORDER = ("conv", "maxpool", "avgpool", "adaptiveavgpool", "adaptivemaxpool", "globalavgpool", "subsample", "lrn",
         "relu", "tanh", "scaledtanh", "sigmoid", "softmax", "dropout", "flatten", "batchnorm", "linear", "rbf",
         "concat", "add",
         "gelu", "silu", "swish", "relu6", "hardsigmoid", "hardswish", "mul", "scale", "layernorm", "slice",
         "shuffle", "permute", "reshape", "classtoken", "posembedding", "attention", "select",
         "convtranspose", "upsample", "pixelshuffle", "pixelunshuffle", "pad", "crop")
_ordered = {name: REGISTRY[name] for name in ORDER if name in REGISTRY}
_ordered.update(REGISTRY)
REGISTRY.clear()
REGISTRY.update(_ordered)

__all__ = ["CATEGORIES", "ORDER", "PLAN_ROLES", "REGISTRY", "SYNONYMS", "TRAITS", "LayerProblem", "LayerType",
           "Outcome", "Params", "Shape", "adaptive_windows", "broadcast", "describe_shape", "elements",
           "normalised_dim", "register", "undeclared_traits"]
