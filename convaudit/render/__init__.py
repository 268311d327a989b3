"""Presentation: reports, findings and runs as Rich tables, JSON, CSV and Markdown. No counting here.

formatting  numbers, sizes, times and shapes
summary     `summary` and `rf`
findings    `check` and `list`
verify      `verify`
bench       `bench`
"""
