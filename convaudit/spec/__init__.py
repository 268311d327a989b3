"""The spec language: YAML with line numbers, blocks and expressions, the parser and the library."""
