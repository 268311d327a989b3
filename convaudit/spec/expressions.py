"""Block parameters in spec values: `$width` or `$width * 4`, evaluated safely over integers.

A string value that starts with `$` is an expression. `$name` alone stands for
the parameter's value, whatever its type; anything else must be integer
arithmetic over parameters and integer literals: + − * // and parentheses.
Nothing else is evaluated: no calls, attributes or other names. An expression
is at most MAX_EXPRESSION characters (so its tree is shallow: no RecursionError),
and every intermediate value stays within 2^63 in magnitude.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

MAX_EXPRESSION = 200  # characters; `$width * $expansion // $groups` needs 30
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}
NAME = re.compile(r"\$([A-Za-z_]\w*)")


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$")


def evaluate(text: str, params: dict[str, Any]) -> Any:
    """The value of `text` given `params`; ValueError says what is wrong."""
    bare = NAME.fullmatch(text.strip())
    if bare:
        return _lookup(bare.group(1), params)
    if len(text) > MAX_EXPRESSION:
        raise ValueError(f"refused: an expression of {len(text):,} characters (at most {MAX_EXPRESSION})")
    source = NAME.sub(lambda m: m.group(1), text.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError):  # ValueError: a NUL byte, say
        raise ValueError(f"cannot read the expression '{text}'") from None
    return _eval(tree.body, params, text)


def _lookup(name: str, params: dict[str, Any]) -> Any:
    if name not in params:
        known = ", ".join(f"${p}" for p in sorted(params)) or "none"
        raise ValueError(f"${name} is not a parameter of this block (parameters: {known})")
    return params[name]


def _eval(node: ast.AST, params: dict[str, Any], text: str) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        value = _lookup(node.id, params)
        if not isinstance(value, int) or isinstance(value, bool):
            shown = repr(value) if len(repr(value)) <= 60 else type(value).__name__
            raise ValueError(f"${node.id} is {shown}, not an integer, in '{text}'")
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, params, text)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = _eval(node.left, params, text), _eval(node.right, params, text)
        if isinstance(node.op, ast.FloorDiv) and right == 0:
            raise ValueError(f"division by zero in '{text}'")
        result = OPERATORS[type(node.op)](left, right)
        if abs(result) > 2**63:
            raise ValueError(f"refused: '{text}' reaches a value larger than 2^63")
        return result
    raise ValueError(f"'{text}' may only use $parameters, integers, + − * // and parentheses")


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """`value` with every expression inside it (in lists and mappings too) replaced by its value."""
    if is_expression(value):
        return evaluate(value, params)
    if isinstance(value, list):
        return [substitute(item, params) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, params) for key, item in value.items()}
    return value
