"""The torch-free analytic core: layer formulas, analysis, checks, memory, receptive fields, claims."""
