"""Parse a spec's `claims:` into Claim records; core.claims evaluates them."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from convaudit.core.claims import CLAIM_KEYS, LAYER_QUANTITIES, NETWORK_QUANTITIES, Claim
from convaudit.core.fields import describe, parse_number
from convaudit.core.groups import group_key
from convaudit.core.model import NetworkSpec
from convaudit.spec.layerlist import closest
from convaudit.spec.yamlsource import Document, KeyPath


def parse_claims(doc: Document, value: Any, spec: NetworkSpec, path: KeyPath = ("claims",)) -> tuple[Claim, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        entries = [(key, item, path + (key,)) for key, item in value.items()]
    elif isinstance(value, list):
        entries = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or "claim" not in item:
                raise doc.error(path + (index,), "a claim in a list needs `claim:` (what is claimed) and `value:`")
            entries.append((item["claim"], item, path + (index,)))
    else:
        raise doc.error(path, "expected a mapping of claims (params: 60e6) or a list of {claim, value, …}")
    return tuple(_parse_claim(doc, str(target), item, where, spec) for target, item, where in entries)


def _parse_claim(doc: Document, target: str, item: Any, path: KeyPath, spec: NetworkSpec) -> Claim:
    body = item if isinstance(item, dict) else {"value": item}
    for key in body:
        if key not in CLAIM_KEYS:
            raise doc.error(path + (key,), f"a claim takes {', '.join(CLAIM_KEYS)}, not '{key}'"
                                           f"{closest(str(key), CLAIM_KEYS)}")
    if "value" not in body:
        raise doc.error(path, "the claim has no value")
    layer, quantity = _split_target(doc, target, path, spec)
    raw = body["value"]
    if quantity == "shape":
        if not isinstance(raw, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
            raise doc.error(path, f"a shape claim needs a list such as [96, 55, 55], got {describe(raw)}")
        value: Fraction | tuple[int, ...] = tuple(raw)
    else:
        try:
            value = parse_number(str(raw).replace(",", "") if isinstance(raw, str) else raw)
        except ValueError as problem:
            raise doc.error(path + ("value",) if isinstance(item, dict) else path, str(problem)) from None
    tolerance, relative = _tolerance(doc, body.get("tol"), path + ("tol",))
    at = _at(doc, body.get("at"), path + ("at",))
    variant = body.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise doc.error(path + ("variant",), f"expected the name of one of the spec's variants, "
                                             f"got {describe(variant)}")
    if variant is not None and variant not in spec.variants:
        raise doc.error(path + ("variant",), f"{spec.name} has no variant '{variant}'"
                                             f"{closest(str(variant), sorted(spec.variants))}")
    return Claim(target, layer, quantity, value, tolerance, relative, str(body.get("source", "")), at, variant,
                 doc.where(path))


def _split_target(doc: Document, target: str, path: KeyPath, spec: NetworkSpec) -> tuple[str | None, str]:
    if target in NETWORK_QUANTITIES:
        return None, target
    if "." not in target:
        raise doc.error(path, f"unknown claim '{target}'{closest(target, NETWORK_QUANTITIES)}: claim a network "
                              f"quantity ({', '.join(NETWORK_QUANTITIES)}) or layer.quantity")
    layer, quantity = target.rsplit(".", 1)
    if quantity not in LAYER_QUANTITIES:
        raise doc.error(path, f"unknown quantity '{quantity}' in '{target}'{closest(quantity, LAYER_QUANTITIES)}; "
                              f"a layer has {', '.join(LAYER_QUANTITIES)}")
    names = {layer_spec.name for layer_spec in spec.layers}
    groups = {group_key(name, spec.separator, depth) for name in names for depth in range(1, 4)}
    if layer not in names and layer not in groups:
        raise doc.error(path, f"'{layer}' in '{target}' is no layer or block here{closest(layer, sorted(names))}")
    return layer, quantity


def _tolerance(doc: Document, value: Any, path: KeyPath) -> tuple[Fraction | None, Fraction | None]:
    if value is None:
        return None, None
    try:
        if isinstance(value, str) and value.strip().endswith("%"):
            absolute, relative = None, parse_number(value.strip()[:-1]) / 100
        else:
            absolute, relative = parse_number(value), None
    except ValueError as problem:
        reason = f": {problem}" if str(problem).startswith("refused") else ""
        raise doc.error(path, f"expected a tolerance such as 5% or 1000, got {describe(value)}{reason}") from None
    if (absolute if absolute is not None else relative) < 0:  # type: ignore[operator]
        raise doc.error(path, f"a tolerance cannot be negative, got {describe(value)}")
    return absolute, relative


def _at(doc: Document, value: Any, path: KeyPath) -> tuple[int, int] | None:
    if value is None:
        return None
    def size(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 2**63

    if size(value):
        return value, value
    if isinstance(value, list) and len(value) == 2 and all(size(v) for v in value):
        return value[0], value[1]
    raise doc.error(path, f"expected an input size such as 224 or [224, 200], got {describe(value)}")


