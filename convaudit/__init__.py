"""convaudit: audit convolutional network architectures, exactly.

The analytic core (spec, layers, analysis, checks) is pure Python and never imports torch; only the verify
and bench commands do, lazily. Importing convaudit changes nothing outside it (no import hooks, no sys.path
entries): what the API needs is loaded on first use.
"""

__version__ = "0.1.0"

__all__ = ["ConvauditError", "Summary", "SummaryTable", "prepare_torchvision", "summary"]

_HOMES = {"ConvauditError": "convaudit.errors", "Summary": "convaudit.api", "SummaryTable": "convaudit.api",
          "summary": "convaudit.api", "prepare_torchvision": "convaudit.importers.targets"}


def __getattr__(name: str) -> object:
    """The public names, each imported from its module on first use, so `import convaudit` stays light."""
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'convaudit' has no attribute '{name}'")
