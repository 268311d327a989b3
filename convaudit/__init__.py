"""convaudit: audit convolutional network architectures, exactly.

The analytic core (spec, layers, analysis, checks) is pure Python and never
imports torch; only the verify and bench commands do, lazily.
"""

__version__ = "0.1.0"
