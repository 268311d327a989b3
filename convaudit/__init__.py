"""convaudit: audit convolutional network architectures, exactly.

The analytic core (spec, layers, analysis, checks) is pure Python and never
imports torch; only the verify and bench commands do, lazily.
"""

import sys

__version__ = "0.1.0"

__all__ = ["Summary", "summary"]


def __getattr__(name: str) -> object:
    """`convaudit.summary` and `convaudit.Summary`, loaded on first use so `import convaudit` stays light."""
    if name in __all__:
        from convaudit import api

        return getattr(api, name)
    raise AttributeError(f"module 'convaudit' has no attribute '{name}'")


class _TorchvisionNextToCpuTorch:
    """Lets `import convaudit, torchvision` work where PyPI's torchvision (built for CUDA torch) sits next to a
    CPU build of torch: on the first `import torchvision` it defines the detection operators torchvision's
    import registers kernels for, when torchvision's own extension cannot (importers.targets). It imports
    nothing until then, so `import convaudit` stays light, and it steps aside after that one import."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name != "torchvision":
            return None
        sys.meta_path[:] = [finder for finder in sys.meta_path if finder is not self]
        try:
            from convaudit.importers.targets import prepare_torchvision

            prepare_torchvision()
        except Exception:  # noqa: BLE001 - torch absent or an unusual build: torchvision's own import decides
            pass
        return None  # the regular finders import torchvision


if "torchvision" not in sys.modules:
    sys.meta_path.insert(0, _TorchvisionNextToCpuTorch())
