"""One resolver for the command line and the Python API: what the user names, at an input size, gives a spec.

    resolve_network("alexnet", (224, 224))             a bundled name or a spec file (`googlenet+aux` too)
    resolve_network("torchvision:resnet18")            a target: torchvision:NAME, package.module:function,
                                                       model.onnx, imported and checked against its trace
    resolve_network(module, (224, 224), channels=3)    a torch.nn.Module, traced
    analysed(spec, batch, dtype)                       its analysis, refusing a network that cannot be computed

Sizes are checked the same way whichever door they come through: positive whole numbers of at most 2^63.
Torch-free: the importers, and torch or onnx behind them, are imported only when a target or a module is given.
"""

from __future__ import annotations

import operator
import re
import sys
from typing import TYPE_CHECKING, Any

from convaudit.core.fields import too_large
from convaudit.core.model import NetworkSpec
from convaudit.errors import ConvauditError, printable

if TYPE_CHECKING:
    from convaudit.core.analysis import Report

DEFAULT_CHANNELS = 3
DEFAULT_MODULE_SIDE = 224  # a module has no input of its own: traced at 3×224×224 unless told


def whole_number(value: Any, what: str, smallest: int = 1) -> int:
    """An int-like value (an int, numpy.int64: anything with __index__; never a bool or a float) from
    `smallest` up to 2^63, or a ConvauditError naming `what`."""
    if isinstance(value, bool):
        raise ConvauditError(f"{what}: expected a whole number, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ConvauditError(f"{what}: expected a whole number, got {type(value).__name__} "
                             f"{printable(repr(value))[:60]}") from None
    if number < smallest:
        raise ConvauditError(f"{what}: expected at least {smallest}, got {number}")
    if too_large(number):
        raise ConvauditError(f"{what}: refused: larger than 2^63")
    return number


def parse_input_size(text: str, option: str = "--input") -> tuple[int, ...]:
    """'224' -> (224, 224); '224x200' -> (224, 200); '16x112x112' -> (16, 112, 112): the command line's input size
    (the last spatial sizes; a 1-D network takes 'N')."""
    match = re.fullmatch(r"\s*(\d{1,30})((?:\s*[x×X,]\s*\d{1,30}){0,2})\s*", text)
    if not match:
        shown = f"'{printable(text)}'" if len(text) <= 60 else f"{len(text):,} characters"
        raise ConvauditError(f"{option}: expected N, HxW or DxHxW such as 224, 224x200 or 16x112x112 (at most 2^63), "
                             f"got {shown}")
    sizes = tuple(int(part) for part in re.findall(r"\d+", text))
    if len(sizes) == 1:
        sizes = sizes * 2
    if any(size < 1 for size in sizes):
        raise ConvauditError(f"{option}: sizes must be positive, got '{printable(text)}'")
    if any(too_large(size) for size in sizes):
        raise ConvauditError(f"{option}: refused: a size larger than 2^63, got '{printable(text)}'")
    return sizes


def parse_shape(text: str, option: str = "--input-shape") -> tuple[int, ...]:
    """'3,224,224' or '1x16000' -> the whole sample shape, channels first (1 to 4 sizes)."""
    if not re.fullmatch(r"\s*\d{1,30}(?:\s*[x×X,]\s*\d{1,30}){0,3}\s*", text):
        shown = f"'{printable(text)}'" if len(text) <= 60 else f"{len(text):,} characters"
        raise ConvauditError(f"{option}: expected the sample shape, channels first, such as 3,224,224 or 1,16000 "
                             f"or 3,16,112,112 (at most 2^63 each), got {shown}")
    sizes = tuple(int(part) for part in re.findall(r"\d+", text))
    if any(size < 1 for size in sizes) or any(too_large(size) for size in sizes):
        raise ConvauditError(f"{option}: sizes must be whole numbers from 1 to 2^63, got '{printable(text)}'")
    return sizes


def input_shape(input_size: Any) -> tuple[int | None, tuple[int, int] | None]:
    """The Python API's input_size, (C, H, W), (H, W) or H, as (channels or None, (H, W) or None)."""
    if input_size is None:
        return None, None
    if isinstance(input_size, (str, bytes)) or not hasattr(input_size, "__iter__"):
        sizes: tuple[Any, ...] = (input_size,)
    else:
        sizes = tuple(input_size)
    if len(sizes) not in (1, 2, 3):
        raise ConvauditError(f"input_size: expected (C, H, W), (H, W) or H, got {len(sizes)} values")
    sides = tuple(whole_number(side, "input_size") for side in sizes)
    if len(sides) == 3:
        return sides[0], (sides[1], sides[2])
    return None, (sides[0], sides[-1])


def resolve_network(model: Any, size: tuple[int, ...] | None = None, variant: str | None = None,
                    channels: int | None = None, args: dict[str, Any] | None = None,
                    partial: bool = False) -> NetworkSpec:
    """The spec `model` names, at `size` (H, W) when given: a NetworkSpec; a spec path or bundled name
    (`name+variant`); a target; or a torch.nn.Module. A spec's own channels must match `channels` if given.
    `partial`: a target or module is imported as `import --partial` does (what cannot be counted is named)."""
    if isinstance(model, NetworkSpec):
        spec = model
    elif isinstance(model, str) or hasattr(model, "__fspath__"):
        reference = str(model)
        from convaudit.importers.targets import is_target

        if is_target(reference):
            if variant:
                raise ConvauditError("--variant applies to specs; an imported model has no variants")
            from convaudit.importers import load_target

            return load_target(reference, args, size, channels or DEFAULT_CHANNELS, partial=partial)
        from convaudit.spec.library import load

        spec = load(reference, variant)
    elif _is_module(model):
        from convaudit.importers import read_model, spec_of

        shape = (channels or DEFAULT_CHANNELS, *(size or (DEFAULT_MODULE_SIDE, DEFAULT_MODULE_SIDE)))
        return spec_of(read_model(model, shape, partial=partial))
    else:
        raise ConvauditError(f"expected a spec path, a bundled name, a target or a torch.nn.Module, not "
                             f"{printable(type(model).__name__)}")
    if size is not None:
        spec = spec.with_input(*size)
    if channels is not None and channels != spec.input[0]:
        raise ConvauditError(f"input_size: {spec.name} takes {spec.input[0]} channels, not {channels}")
    return spec


def _is_module(model: Any) -> bool:
    """A torch.nn.Module: only an instance of the real class (an object can only be one once torch is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def analysed(spec: NetworkSpec, batch: Any = 1, dtype: str = "fp32") -> Report:
    """Analyse, refusing (exit 2) a network that cannot be computed at this input."""
    from convaudit.core.analysis import analyze
    from convaudit.core.units import DTYPE_BYTES

    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise ConvauditError(f"dtype: expected one of {', '.join(DTYPE_BYTES)}, got {printable(repr(dtype))[:40]}")
    report = analyze(spec, whole_number(batch, "batch"), dtype)
    if report.halted:
        halt = report.halted
        raise ConvauditError(f"{halt.layer.name}: {halt.problem.message} (see `convaudit check`)",
                             halt.layer.where_key(halt.problem.key))
    return report
