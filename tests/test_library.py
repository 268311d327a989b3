"""Every bundled architecture: parses, checks clean at its own input, validates against the schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from convaudit.core.analysis import TOTAL_FIELDS, analyze
from convaudit.core.checks import check
from convaudit.spec.library import bundled_paths, load
from convaudit.spec.parser import load_spec
from convaudit.spec.schema import build_schema, schema_json
from convaudit.spec.yamlsource import load_document, read_text

from .conftest import ARCHITECTURES, ROOT


@pytest.fixture(params=ARCHITECTURES, ids=lambda p: p.stem)
def architecture(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_passes_check_at_its_own_input(architecture: Path) -> None:
    findings = check(analyze(load_spec(architecture)))
    assert [f.message for f in findings if f.severity == "error"] == []


def test_columns_sum_to_totals(architecture: Path) -> None:
    report = analyze(load_spec(architecture), batch=3)
    for name in TOTAL_FIELDS:
        assert getattr(report.totals, name) == sum(getattr(layer, name) for layer in report.layers), name
    assert report.totals.params == report.totals.trainable_params + report.totals.non_trainable_params
    assert report.totals.flops == 2 * report.totals.macs


def test_validates_against_the_published_schema(architecture: Path) -> None:
    document = load_document(read_text(architecture), str(architecture))
    jsonschema.validate(document.data, build_schema())


def test_file_name_is_the_spec_name(architecture: Path) -> None:
    assert load_spec(architecture).name == architecture.stem


def test_names_and_aliases_are_unique() -> None:
    names = [name for path in ARCHITECTURES for name in (load_spec(path).name, *load_spec(path).aliases)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_installed_copy_matches_the_repository() -> None:
    names = sorted(p.name for p in bundled_paths())
    assert names == sorted(p.name for p in ARCHITECTURES)


@pytest.mark.parametrize("alias, name", [("vgg11", "vgg-a"), ("vgg13", "vgg-b"), ("vgg16", "vgg-d"),
                                         ("vgg19", "vgg-e"), ("VGG16", "vgg-d"), ("lenet", "lenet5")])
def test_common_names_resolve(alias: str, name: str) -> None:
    assert load(alias).name == name


def test_published_schema_is_current() -> None:
    published = (ROOT / "convaudit" / "spec" / "spec.schema.json").read_text(encoding="utf-8")
    assert published == schema_json(), "run: convaudit schema > convaudit/spec/spec.schema.json"


def test_schema_rejects_what_the_parser_rejects() -> None:
    schema = build_schema()
    bad = {"name": "x", "input": [3, 8, 8], "layers": [{"type": "conv", "out": 4, "kernal": 3}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    good = {"name": "x", "input": [3, 8, 8], "layers": [{"type": "conv", "out": 4, "kernel": [3, 5]}]}
    jsonschema.validate(good, schema)
    json.dumps(schema)
