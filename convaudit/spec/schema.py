"""The JSON Schema of the spec format, generated from the layer registry's field declarations."""

from __future__ import annotations

import json
from typing import Any

from convaudit.core.fields import MAX_SPATIAL_AXES, Names, Text
from convaudit.core.layers import REGISTRY
from convaudit.core.model import EXPECT_FIELDS

SCHEMA_ID = "https://github.com/convaudit/convaudit/spec.schema.json"
EXPRESSION = {"$ref": "#/$defs/expression"}


def _layer_schema(type_name: str) -> dict[str, Any]:
    kind = REGISTRY[type_name]
    properties: dict[str, Any] = {
        "type": {"const": type_name, "description": kind.doc},
        "name": {"type": "string", "description": "layer name; defaults to e.g. conv1, pool2"},
        "from": {**Names().schema(), "description": "input layer(s); defaults to the previous layer"},
        "expect": {"$ref": "#/$defs/expect"},
    }
    properties.update({field.name: {"anyOf": [field.schema(), EXPRESSION]} for field in kind.fields})
    return {
        "type": "object",
        "description": kind.doc + (f". Other ops: {kind.other_ops_rule}" if kind.other_ops_rule != "0" else ""),
        "properties": properties,
        "required": ["type"] + [field.name for field in kind.fields if field.required],
        "additionalProperties": False,
    }


def build_schema() -> dict[str, Any]:
    types = sorted(REGISTRY)
    expect = {key: kind.schema() for key, kind in EXPECT_FIELDS.items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "convaudit network spec",
        "description": "A convolutional network described layer by layer; see the convaudit README.",
        "type": "object",
        "required": ["name"],
        "anyOf": [{"required": ["input", "layers"]}, {"required": ["extends"]}],
        "additionalProperties": False,
        "properties": {
            "name": {**Text().schema(), "description": "short name, used on the command line"},
            "title": {**Text().schema(), "description": "human-readable title"},
            "source": {**Text().schema(), "description": "where the architecture is stated (paper, section)"},
            "notes": {**Text().schema(), "description": "free text"},
            "imported": {"type": "object", "required": ["from"], "additionalProperties": False,
                         "properties": {"from": {"type": "string"}, "args": {"type": "object"}},
                         "description": "the model `convaudit import` read this spec from (verify's default "
                                        "--against)"},
            "untraced": {"type": "object", "required": ["op"], "additionalProperties": False,
                         "properties": {"op": {"type": "string"}, "module": {"type": "string"},
                                        "reason": {"type": "string"},
                                        "unreached": {"type": "array", "items": {"type": "string"}}},
                         "description": "where `import --partial` stopped tracing: the operator, its module path and "
                                        "why, and the modules that had not run; what the model runs from there on is "
                                        "not in this spec and is not counted"},
            "aliases": {"type": "array", "items": {"type": "string"}, "description": "other names that resolve"},
            "input": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2,
                      "maxItems": 1 + MAX_SPATIAL_AXES,
                      "description": "[channels, length], [channels, height, width] or [channels, depth, height, "
                                     "width]"},
            "outputs": {**Names().schema(), "description": "the network's outputs, the main one first; defaults to "
                                                          "the one layer nothing reads"},
            "separator": {"enum": ["/", ".", "_", ":"], "default": "/",
                          "description": "joins a block instance's name to its layers' names"},
            "placement": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                          "description": "layers pinned whole to a device for `split --strategy columns`: "
                                         "{fc8: 0}"},
            "layers": {"$ref": "#/$defs/layers"},
            "blocks": {"type": "object", "additionalProperties": {"$ref": "#/$defs/block"},
                       "description": "reusable blocks, used in layers as {block: NAME, name: ..., params...}"},
            "variants": {"type": "object", "additionalProperties": {"$ref": "#/$defs/variant"},
                         "description": "named changes to the network: extra layers and outputs, or replaced blocks"},
            "extends": {"type": "string", "description": "reuse another spec's network (a path beside this file or a "
                                                         "bundled name); this spec may then set only its name, "
                                                         "title, source, notes, aliases, input and claims"},
            "claims": {"description": "figures a source states, checked by `convaudit audit`",
                       "oneOf": [{"type": "object", "additionalProperties": {"$ref": "#/$defs/claimValue"}},
                                 {"type": "array", "items": {"$ref": "#/$defs/claim"}}]},
        },
        "$defs": {
            "layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/item"}},
            "item": {"if": {"type": "object", "required": ["block"]}, "then": {"$ref": "#/$defs/instance"},
                     "else": {"$ref": "#/$defs/layer"}},
            "claimValue": {"oneOf": [{"type": ["number", "string"]}, {"type": "array", "items": {"type": "integer"}},
                                     {"$ref": "#/$defs/claim"}]},
            "claim": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "claim": {"type": "string", "description": "params, neurons, … or layer.quantity such as "
                                                               "conv1.shape"},
                    "value": {"description": "the stated value: a number (60e6) or a shape [96, 55, 55]"},
                    "tol": {"type": ["number", "string"], "description": "5% (relative) or an absolute number"},
                    "source": {"type": "string", "description": "where the claim is made"},
                    "at": {"description": "the input size the claim is stated for: 224 or [224, 200]"},
                    "variant": {"type": "string"},
                    "note": {"type": "string"},
                },
                "required": ["value"],
            },
            "expression": {"type": "string", "pattern": "^\\$",
                           "description": "inside a block: $param, or integer arithmetic such as $width * 4"},
            "instance": {
                "type": "object",
                "description": "a use of a block; its other keys are the block's parameters",
                "required": ["block"],
                "properties": {
                    "block": {"type": "string", "description": "the block's name under blocks:"},
                    "name": {"type": "string", "description": "the instance's name, prefixed to its layers' names"},
                    "from": {**Names().schema(), "description": "the instance's input; defaults to the previous layer"},
                    "repeat": {"type": "integer", "minimum": 1,
                               "description": "instances NAME/0 … NAME/N−1 (joined with the separator)"},
                    "start": {"type": "integer", "minimum": 0, "description": "the first index when repeated"},
                    "expect": {"$ref": "#/$defs/expect"},
                },
            },
            "block": {
                "type": "object",
                "required": ["layers"],
                "additionalProperties": False,
                "properties": {
                    "description": {"type": "string"},
                    "params": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "string"}}],
                               "description": "parameter names and defaults (null: required)"},
                    "layers": {"$ref": "#/$defs/layers"},
                    "output": {"type": "string", "description": "the block's output layer; defaults to its last"},
                },
            },
            "variant": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "description": {"type": "string"},
                    "blocks": {"type": "object", "additionalProperties": {"$ref": "#/$defs/block"}},
                    "layers": {"$ref": "#/$defs/layers"},
                    "outputs": Names().schema(),
                },
            },
            "layer": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": types}},
                "allOf": [{"if": {"properties": {"type": {"const": t}}, "required": ["type"]},
                           "then": {"$ref": f"#/$defs/{t}"}} for t in types],
            },
            "expect": {"type": "object", "description": "what a source states about this layer; `check` verifies it",
                       "properties": expect, "additionalProperties": False},
            **{t: _layer_schema(t) for t in types},
        },
    }


def schema_json() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"
