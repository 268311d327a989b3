"""Scale: deep and wide inputs stay linear, never recurse per layer or per level, and refuse with the limit named."""

from __future__ import annotations

import pytest
import yaml

from convaudit.errors import SpecError
from convaudit.spec import yamlsource
from convaudit.spec.yamlsource import MAX_DEPTH, MAX_NODES, load_document

# ------------------------------------------------------------------ YAML


def test_the_c_loader_is_used_when_pyyaml_has_it() -> None:
    assert yamlsource.LOADER is getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.mark.parametrize("text", ["[" * 10_000 + "]" * 10_000, "- " * 10_000 + "x\n",
                                  "".join(" " * i + "k:\n" for i in range(1_000)) + " " * 1_000 + "k: 1\n"],
                         ids=["flow", "block-sequence", "block-mapping"])
def test_deep_nesting_is_one_clear_error(text: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_document(text, "deep.yaml")
    message = str(caught.value)
    assert message.startswith("deep.yaml:") and "\n" not in message
    assert f"nests deeper than {MAX_DEPTH} levels (the YAML depth limit)" in message


def test_nesting_up_to_the_limit_is_read() -> None:
    # MAX_DEPTH sequences inside one another: the innermost holds the scalar
    doc = load_document("[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH, "ok.yaml")
    value = doc.data
    for _ in range(MAX_DEPTH):
        value = value[0]
    assert value == 1


def test_a_large_plain_document_is_not_an_alias_bomb() -> None:
    # more nodes than MAX_NODES written out, none through an alias: only aliases count against MAX_NODES
    count = MAX_NODES + 10_000
    doc = load_document("x: [" + "1," * count + "]\n", "plain.yaml")
    assert len(doc.data["x"]) == count


def test_alias_expansion_is_counted_and_the_limit_named() -> None:
    # each alias to a counts a's 1 + 1,000 nodes; 200 of them pass MAX_NODES = 200,000
    text = "a: &a [" + "1, " * 1_000 + "]\nb: [" + ", ".join(["*a"] * 200) + "]\n"
    with pytest.raises(SpecError) as caught:
        load_document(text, "bomb.yaml")
    assert f"more than {MAX_NODES} nodes through aliases (the alias-expansion limit" in str(caught.value)
    assert str(caught.value).startswith("bomb.yaml:2:")


def test_aliases_copy_values_and_lines_and_merges_keep_their_rules() -> None:
    text = "a: &x\n  b: 1\n  c: [1, 2]\nd: *x\ne:\n  <<: *x\n  b: 5\n"
    doc = load_document(text, "m.yaml")
    assert doc.data == {"a": {"b": 1, "c": [1, 2]}, "d": {"b": 1, "c": [1, 2]}, "e": {"b": 5, "c": [1, 2]}}
    assert doc.data["d"] is not doc.data["a"] and doc.data["d"]["c"] is not doc.data["a"]["c"]
    # the alias's own key is on line 4; what it expands to is where the anchor wrote it
    assert doc.lines[("d",)] == 4 and doc.lines[("d", "c")] == 3 and doc.lines[("e", "b")] == 7
    assert doc.where(("e", "c")).line == 5  # a merged key: the line of the mapping it was merged into


@pytest.mark.parametrize("text, needle", [
    ("a: *nowhere\n", "undefined alias *nowhere"),
    ("a: &x 1\nb: &x 2\n", "the anchor &x is defined twice"),
    ("--- 1\n--- 2\n", "expected a single document"),
    ("a:\n  <<: [1]\n", "a merge key (<<) must name a mapping"),
    ("? [a]\n: 1\n", "mapping keys must be plain names"),
    ("!!binary a: 1\n", "YAML tags such as tag:yaml.org,2002:binary are not allowed"),
])
def test_yaml_refusals(text: str, needle: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_document(text, "bad.yaml")
    assert needle in str(caught.value) and "\n" not in str(caught.value)


# ------------------------------------------------------------------ bundled names

def test_bundled_names_from_the_headers_agree_with_the_parsed_specs() -> None:
    from convaudit.spec.library import bundled_names, bundled_paths
    from convaudit.spec.parser import load_spec

    expected = {}
    for path in bundled_paths():
        spec = load_spec(path)
        expected.update({name.lower(): path for name in (spec.name, *spec.aliases)})
    assert bundled_names() == expected


def test_resolving_a_bundled_name_parses_one_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    from convaudit.spec import library

    loaded = []
    real = library.load_spec
    monkeypatch.setattr(library, "load_spec", lambda path, variant=None: loaded.append(path) or real(path, variant))
    assert library.load("vgg19").name == "vgg-e"  # an alias: no file is called vgg19.yaml
    assert [path.name for path in loaded] == ["vgg-e.yaml"]


def test_header_names_read_block_and_flow_lists() -> None:
    from convaudit.spec.library import header_names

    text = "# c\nname: net\nlayers:\n  - {type: relu, name: aliases}\naliases:\n- one\n-   two\ninput: [1, 2, 2]\n"
    assert header_names(text, "n.yaml") == ["net", "one", "two"]


# ------------------------------------------------------------------ start-up

def test_help_loads_no_analysis_rendering_or_yaml() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom typer.testing import CliRunner\nfrom convaudit.cli import app\n"
            "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
            "print(sorted(m for m in ('convaudit.core.analysis', 'convaudit.render.summary', 'convaudit.spec.parser',"
            " 'yaml') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


# ------------------------------------------------------------------ deep networks

def test_a_20000_layer_chain_is_analysed_without_recursion() -> None:
    """A dilated conv (taps with gaps) makes every layer above it take the point-by-point path, so the
    first and last supports of the top layer are followed 20,000 layers down: on an explicit stack."""
    import sys

    from convaudit.core.analysis import analyze
    from convaudit.core.groups import grouped, main_and_side
    from convaudit.core.memory import training_memory
    from convaudit.core.receptive import receptive_fields
    from convaudit.spec.layerlist import MAX_LAYERS
    from convaudit.spec.parser import parse_text

    relus = "  - {type: relu}\n" * (MAX_LAYERS - 1)
    conv = "  - {type: conv, out: 1, kernel: 3, dilation: 2, padding: 2}\n"
    text = f"name: deep\ninput: [1, 5, 5]\nlayers:\n{conv}{relus}"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # far below the depth: anything recursing per layer fails
    try:
        report = analyze(parse_text(text))
        fields = receptive_fields(report)
        memory = training_memory(report)
        assert len(main_and_side(report)[0]) == len(grouped(report, 1)) == MAX_LAYERS
    finally:
        sys.setrecursionlimit(limit)
    top = report.layers[-1].name
    # 5 wide, kernel 3 dilated by 2, padded by 2: output 0 reads 0, 2 (and −2, padding); output 4 reads 2 and 4
    assert fields[top].uncovered == (0, 0) and fields[top].rf == (5, 5)
    assert memory.inference_peak == 2 * 25 * 4  # a ReLU's input and output, 25 fp32 values each
