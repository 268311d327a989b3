"""Targets: what `convaudit import` (and every command) accepts besides a spec.

    torchvision:NAME        a torchvision builder, random weights, never downloaded
    package.module:function a Python factory returning an nn.Module (with --arg key=value)
    path/to/model.onnx      an ONNX file, read with the onnx package (no torch)

Torch and torchvision are imported inside the functions, only for torch targets, with Ctrl-C deferred until
their C++ code is loaded (convaudit.interrupts). A factory is the user's own code: whatever it raises, a
SyntaxError in its module or a sys.exit() included, is one line naming it; what it prints goes to stderr,
so the JSON or spec on stdout stays clean; the working directory is importable only while it runs.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import importlib.util
import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from convaudit.errors import ConvauditError, SpecError, exception_text
from convaudit.interrupts import deferred, import_deferred

T = TypeVar("T")
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
    with deferred():
        prepare_torchvision()
        import torchvision

    return torchvision


def prepare_torchvision() -> None:
    """Make `import torchvision` work next to CPU torch (see load_torchvision); a no-op where it already does.

    Public as `convaudit.prepare_torchvision()`: a Python-API user calls it before `import torchvision`.
    Nothing runs at `import convaudit`; this defines the stub operators, process-wide, only when called.
    """
    require("torchvision")
    torch = import_deferred("torch")

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
    """torchvision's builders: classification, segmentation, video, optical flow and detection (the quantized ones
    run only on the CPU's quantized kernels, never on the meta device a trace needs)."""
    torchvision = load_torchvision()
    return sorted(name for name in torchvision.models.list_models() if not name.startswith("quantized_"))


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

        raise SpecError(f"torchvision has no model '{name}'{closest(name, known)}")
    if args.get("weights") is not None or args.get("weights_backbone") is not None:
        raise SpecError("torchvision targets are built with random weights (nothing is downloaded); "
                        "drop --arg weights and --arg weights_backbone")
    random = {"weights": None}
    if "weights_backbone" in inspect.signature(torchvision.models.get_model_builder(name)).parameters:
        random["weights_backbone"] = None  # segmentation and detection builders fetch an ImageNet backbone otherwise
    make = lambda: torchvision.models.get_model(name, **{**args, **random})  # noqa: E731
    return calling(f"{TORCHVISION}{name}", lambda: on_meta(make) if meta else make())


def build_factory(reference: str, args: dict[str, Any], meta: bool = True) -> Any:
    require("torch")
    torch = import_deferred("torch")  # before the user's module imports it, with Ctrl-C deferred
    module_name, function_name = reference.split(":", 1)
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is not None:
        prepare_torchvision()  # the user's module may import it (timm does)
    with importable_working_directory(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the module's import-time deprecation notices are not ours to print
        module = calling(reference, lambda: importlib.import_module(module_name),
                         failing=f"cannot import module '{module_name}'")
        factory = getattr(module, function_name, None)
        if not callable(factory):
            raise SpecError(f"{reference}: module '{module_name}' has no function '{function_name}'")
        model = calling(reference, lambda: on_meta(lambda: factory(**args)) if meta else factory(**args))
    if not isinstance(model, torch.nn.Module):
        raise SpecError(f"{reference} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def calling(reference: str, run: Callable[[], T], failing: str | None = None) -> T:
    """Run the user's code (importing a factory's module, calling a factory or a builder): whatever it raises
    is one line naming it (`failing` says what failed, else 'REFERENCE raised …'), sys.exit() included, and
    what it prints goes to stderr. Ctrl-C passes through."""
    where = f"{reference}: {failing}:" if failing else f"{reference}"
    try:
        with stdout_to_stderr():
            return run()
    except ConvauditError:
        raise
    except SystemExit as stop:
        raise SpecError(f"{where} called sys.exit({exception_text(stop) or 'None'}) instead of returning a model"
                        ) from None
    except Exception as error:  # the user's code, not ours: its failure is bad input (exit 2), not a bug
        raise SpecError(f"{where} raised {type(error).__name__}: {exception_text(error)}") from None


@contextlib.contextmanager
def importable_working_directory() -> Iterator[None]:
    """A factory's module in the working directory is found, as `python -m` finds it, while the factory is
    imported and called; sys.path is as it was afterwards."""
    folder = os.getcwd()
    if folder in sys.path or "" in sys.path:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """What user code prints goes to stderr: Python's sys.stdout, and file descriptor 1 for writes from C."""
    _flush_python_stdout()
    saved = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no file descriptor 1: Python's redirection alone
        if saved is not None:
            os.close(saved)
            saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            _flush_python_stdout()
            _flush_c_stdout()
            os.dup2(saved, 1)
            os.close(saved)


def _flush_python_stdout() -> None:
    for stream in (sys.stdout, sys.__stdout__):
        with contextlib.suppress(Exception):
            stream.flush()


def _flush_c_stdout() -> None:
    """printf's buffer, written while fd 1 pointed at stderr, must leave before fd 1 points back."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


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
