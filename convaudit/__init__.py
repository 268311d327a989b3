"""convaudit: audit convolutional network architectures, exactly.

The analytic core (spec, layers, analysis, checks) is pure Python and never
imports torch; only the verify and bench commands do, lazily.
"""

__version__ = "0.1.0"

__all__ = ["Summary", "summary"]


def __getattr__(name: str) -> object:
    """`convaudit.summary` and `convaudit.Summary`, loaded on first use so `import convaudit` stays light."""
    if name in __all__:
        from convaudit import api

        return getattr(api, name)
    raise AttributeError(f"module 'convaudit' has no attribute '{name}'")
