"""Parsing: the vocabulary, defaults, graph order, and one clear located error per kind of bad input."""

from __future__ import annotations

import pytest

from convaudit.core.model import INPUT
from convaudit.errors import SpecError
from convaudit.spec.parser import load_spec, parse_text
from convaudit.spec.yamlsource import MAX_NODES, load_document

NET = """\
name: tiny
input: [3, 32, 32]
layers:
{layers}
"""


def net(*layers: str) -> str:
    return NET.format(layers="\n".join(f"  - {layer}" for layer in layers))


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_text(text, "net.yaml")
    return caught.value


# ------------------------------------------------------------------ vocabulary and defaults

def test_sizes_accept_int_or_pair_and_defaults_fill_in() -> None:
    spec = parse_text(net("{type: conv, out: 8, kernel: [3, 5], padding: 1}",
                          "{type: maxpool, kernel: 2}",
                          "{type: linear, out: 10}"))
    conv, pool, fc = spec.layers
    assert conv.params["kernel"] == (3, 5)
    assert conv.params["padding"] == (1,)  # one value for every spatial axis, spread once the axes are known
    assert conv.params["stride"] == (1,) and conv.params["groups"] == 1 and conv.params["bias"] is True
    assert pool.params["stride"] is None  # resolved to the kernel when shapes are computed
    assert (conv.name, pool.name, fc.name) == ("conv1", "pool1", "fc1")


def test_default_names_skip_names_the_spec_already_uses() -> None:
    spec = parse_text(net("{type: conv, out: 8, kernel: 3}", "{type: conv, name: conv1, out: 8, kernel: 3}"))
    assert [layer.name for layer in spec.layers] == ["conv2", "conv1"]


def test_layers_chain_unless_from_is_given() -> None:
    spec = parse_text(net("{type: conv, name: a, out: 8, kernel: 3}", "{type: relu, name: b}"))
    assert spec.layers[0].inputs == (INPUT,)
    assert spec.layers[1].inputs == ("a",)


def test_number_fields_keep_the_written_decimal() -> None:
    spec = parse_text(net("{type: lrn, size: 5, alpha: 1.0e-4, beta: 0.75, k: 2}"))
    from fractions import Fraction

    assert spec.layers[0].params["alpha"] == Fraction(1, 10000)


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = """\
name: anchors
input: [3, 32, 32]
layers:
  - &c3 {type: conv, out: 8, kernel: 3, padding: 1}
  - {<<: *c3, name: wide, out: 16}
"""
    spec = parse_text(text)
    assert spec.layers[1].params["out"] == 16 and spec.layers[1].params["padding"] == (1,)


# ------------------------------------------------------------------ bad input: one located error each

def test_yaml_syntax_error_names_the_line() -> None:
    err = error_of("name: x\ninput: [3, 32, 32]\nlayers:\n  - {type: conv, out: 8\n  - {type: relu}\n")
    assert "YAML syntax error" in str(err)
    assert str(err).startswith("net.yaml:5")


def test_unknown_type_suggests_the_closest() -> None:
    err = error_of(net("{type: conv, out: 8, kernel: 3}", "{type: maxpol, kernel: 2}"))
    assert str(err) == "net.yaml:5: layers[1].type: unknown layer type 'maxpol' (did you mean 'maxpool'?)"


def test_unknown_key_suggests_the_closest() -> None:
    err = error_of(net("{type: conv, out: 8, kernal: 3}"))
    assert "net.yaml:4: layers[0].kernal: conv does not take 'kernal' (did you mean 'kernel'?)" in str(err)


@pytest.mark.parametrize("layer, key, needle", [
    ("{type: conv, out: 8, kernel: 0}", "kernel", "expected a positive integer or one per spatial axis such as [h, w], "
                                                  "got int 0"),
    ("{type: conv, out: -4, kernel: 3}", "out", "expected a positive integer, got int -4"),
    ("{type: conv, out: 8, kernel: '3x3'}", "kernel", "got string '3x3'"),
    ("{type: conv, out: 8, kernel: [3, 3, 3, 3]}", "kernel", "got list [3, 3, 3, 3]"),  # at most 3 spatial axes
    ("{type: conv, out: 8, kernel: 3, padding: -1}", "padding", "an integer ≥ 0"),
    ("{type: conv, out: 8, kernel: 3, bias: 'yes'}", "bias", "expected true or false"),
    ("{type: conv, out: 8, kernel: true}", "kernel", "got boolean true"),
    ("{type: dropout, p: 1.5}", "p", "expected a number ≥ 0 and < 1"),
    ("{type: conv, out: 9, kernel: 3, groups: 2}", "groups", "output channels 9 are not divisible by groups 2"),
    ("{type: maxpool, kernel: 2, padding: 2}", "padding", "more than half the kernel"),
])
def test_wrong_values_name_file_line_and_key(layer: str, key: str, needle: str) -> None:
    err = error_of(net(layer))
    assert str(err).startswith(f"net.yaml:4: layers[0].{key}: ")
    assert needle in str(err)
    assert "\n" not in str(err)


def test_missing_required_field() -> None:
    assert str(error_of(net("{type: conv, kernel: 3}"))) == (
        "net.yaml:4: layers[0]: conv needs 'out' (a positive integer)")


@pytest.mark.parametrize("text, needle", [
    ("name: x\nlayers: [{type: relu}]\n", "the spec has no 'input'"),
    ("name: x\ninput: [3, 0, 32]\nlayers: [{type: relu}]\n", "sizes must be positive"),
    ("name: x\ninput: [3]\nlayers: [{type: relu}]\n", "expected [channels, length], [channels, height, width] or "
                                                         "[channels, depth, height, width]"),
    ("name: x\ninput: [3, 32, 32]\nlayers: []\n", "expected a non-empty list of layers"),
    ("name: x\ninput: [3, 32, 32]\nlayer: []\n", "unknown top-level key 'layer' (did you mean 'layers'?)"),
    ("- just\n- a list\n", "a spec must be a mapping"),
    ("", "a spec must be a mapping"),
])
def test_bad_top_level(text: str, needle: str) -> None:
    assert needle in str(error_of(text))


def test_duplicate_keys_are_refused() -> None:
    err = error_of("name: x\ninput: [3, 32, 32]\nname: y\nlayers: [{type: relu}]\n")
    assert "duplicate key 'name' (first given on line 1)" in str(err)
    assert str(err).startswith("net.yaml:3")


def test_duplicate_layer_names_are_refused() -> None:
    err = error_of(net("{type: relu, name: a}", "{type: relu, name: a}"))
    assert "layer name 'a' is used twice (first at line 4)" in str(err)


def test_alias_bomb_is_refused_not_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):  # 10**12 leaves if expanded
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(SpecError, match=f"more than {MAX_NODES} nodes through aliases"):
        load_document("\n".join(lines) + "\n", "bomb.yaml")


def test_python_tags_are_refused() -> None:
    with pytest.raises(SpecError, match="YAML tags such as tag:yaml.org,2002:python/object:os.system are not allowed"):
        load_document("layers:\n  - !!python/object:os.system {type: relu}\n", "tag.yaml")


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(SpecError, match="refers to the node that contains it"):
        load_document("a: &a [1, *a]\n", "loop.yaml")


def test_missing_file_and_directory(tmp_path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)


def test_not_utf8(tmp_path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(path)


# ------------------------------------------------------------------ graphs

def test_from_naming_nothing_is_an_error() -> None:
    err = error_of(net("{type: conv, name: stem, out: 8, kernel: 3}", "{type: relu, from: stme}"))
    assert "'from' names 'stme', which is no layer here (did you mean 'stem'?)" in str(err)
    assert str(err).startswith("net.yaml:5: layers[1].from")


def test_cycles_are_errors() -> None:
    err = error_of(net("{type: relu, name: a, from: c}", "{type: relu, name: b, from: a}",
                       "{type: relu, name: c, from: b}"))
    assert "the layers form a cycle" in str(err)


def test_layers_may_be_written_before_their_inputs() -> None:
    spec = parse_text(net("{type: conv, name: early, out: 4, kernel: 1}",
                          "{type: relu, name: mid, from: late}",
                          "{type: relu, name: late, from: early}"))
    assert [layer.name for layer in spec.layers] == ["early", "late", "mid"]


def test_unused_layers_are_errors() -> None:
    err = error_of(net("{type: conv, name: a, out: 4, kernel: 1}", "{type: relu, name: dead, from: a}",
                       "{type: relu, name: out, from: a}"))
    assert "the output of 'dead' is never used" in str(err)


def test_merge_layers_need_two_inputs() -> None:
    err = error_of(net("{type: conv, out: 4, kernel: 1}", "{type: add}"))
    assert "add merges 2 or more inputs" in str(err)
