"""Targets: what `convaudit import` (and every command) accepts besides a spec.

    torchvision:NAME        a torchvision builder, random weights, never downloaded
    package.module:function a Python factory returning an nn.Module (with --arg key=value)
    path/to/model.onnx      an ONNX file, read with the onnx package (no torch)

Torch and torchvision are imported inside the functions, only for torch targets.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

from convaudit.errors import ConvauditError, SpecError

TORCHVISION = "torchvision:"
FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
DEFAULT_SIZE = 224
_STUB_LIBRARY: list[Any] = []  # keeps the stub operator library alive (a dropped Library unregisters itself)


def is_target(reference: str) -> bool:
    """A reference that names a model to import rather than a spec."""
    if reference.startswith(TORCHVISION) or reference.lower().endswith(".onnx"):
        return True
    return bool(FACTORY.fullmatch(reference)) and not Path(reference).exists()


def require(package: str, extra: str = "torch") -> None:
    if importlib.util.find_spec(package) is None:
        raise ConvauditError(f"importing this target needs {package}: pip install 'convaudit[{extra}]' "
                             "(for CPU PyTorch, pip install torch==2.13.0 first)")


def _has_operator(name: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(name, "")
        return True
    except RuntimeError:
        return False


def load_torchvision() -> Any:
    """`import torchvision`, also next to a CPU build of torch that its wheel was not built for.

    PyPI's torchvision wheels carry a C extension built for the CUDA torch. Next to CPU torch that
    extension does not load, and torchvision's import then fails registering fake kernels for
    `torchvision::nms`, an operator that was never defined. The classification models need no such
    operator, so when the extension cannot provide it, nms and qnms are defined here (schemas only;
    calling them fails). A torchvision whose extension loads is left untouched.
    """
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    require("torchvision")
    prepare_torchvision()
    import torchvision

    return torchvision


def prepare_torchvision() -> None:
    """Make `import torchvision` work next to CPU torch (see load_torchvision); a no-op where it already does."""
    import torch

    if not _has_operator("torchvision::nms"):
        spec = importlib.util.find_spec("torchvision")
        folder = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else Path()
        for library in glob.glob(str(folder / "_C*.so")) + glob.glob(str(folder / "_C*.pyd")):
            try:
                torch.ops.load_library(library)
            except (OSError, RuntimeError):
                pass
    if not _has_operator("torchvision::nms"):
        library = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            if not _has_operator(f"torchvision::{op}"):
                library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _STUB_LIBRARY.append(library)


def torchvision_names() -> list[str]:
    """torchvision's classification builders."""
    torchvision = load_torchvision()
    return sorted(torchvision.models.list_models(module=torchvision.models))


def on_meta(build: Any) -> Any:
    """Build a model on the meta device (nothing allocated); where its constructor computes with tensors
    (RegNet's widths), build it normally and move it to meta."""
    import torch

    try:
        with torch.device("meta"):
            return build()
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return build().to("meta")


def build_torchvision(name: str, args: dict[str, Any], meta: bool = True) -> Any:
    torchvision = load_torchvision()
    known = torchvision_names()
    if name not in known:
        from convaudit.spec.layerlist import closest

        raise SpecError(f"torchvision has no classification model '{name}'{closest(name, known)}")
    if "weights" in args:
        raise SpecError("torchvision targets are built with random weights (nothing is downloaded); "
                        "drop --arg weights")
    make = lambda: torchvision.models.get_model(name, weights=None, **args)  # noqa: E731
    return on_meta(make) if meta else make()


def build_factory(reference: str, args: dict[str, Any], meta: bool = True) -> Any:
    require("torch")
    module_name, function_name = reference.split(":", 1)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # a factory in the working directory, as `python -m` would find it
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SpecError(f"{reference}: cannot import module '{module_name}': {error}") from None
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise SpecError(f"{reference}: module '{module_name}' has no function '{function_name}'")
    try:
        model = on_meta(lambda: factory(**args)) if meta else factory(**args)
    except TypeError as error:
        raise SpecError(f"{reference}: {error}") from None
    import torch

    if not isinstance(model, torch.nn.Module):
        raise SpecError(f"{reference} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def default_size(model: Any, name: str) -> int:
    """The input side a model expects: its own `image_size` (ViT), torchvision's crop size, or 224."""
    size = getattr(model, "image_size", None)
    if isinstance(size, int):
        return size
    if name.startswith(TORCHVISION):
        torchvision = load_torchvision()
        try:
            weights = torchvision.models.get_model_weights(name[len(TORCHVISION):])
            crop = weights.DEFAULT.transforms.keywords.get("crop_size")
            if crop:
                return int(crop[0] if isinstance(crop, (list, tuple)) else crop)
        except (ValueError, AttributeError, KeyError):
            pass
    return DEFAULT_SIZE


def build(reference: str, args: dict[str, Any], meta: bool = True) -> Any:
    """The model a target names: on the meta device to be traced, or with real (random) weights to be run."""
    if reference.startswith(TORCHVISION):
        return build_torchvision(reference[len(TORCHVISION):], args, meta)
    return build_factory(reference, args, meta)
