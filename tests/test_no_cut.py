"""No table ever cuts a number or a name: the representative bundled networks (every layer type, every rank, the
longest names and the widest numbers) in every command and format, at 80 and 120 columns and to a pipe. Columns
that do not fit are left out whole, and one footer line says which."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from convaudit.cli import app

from .conftest import REPRESENTATIVE

WIDTHS = ("80", "120", None)  # None: a pipe, no COLUMNS


def run(args: list[str], width: str | None) -> str:
    env = {"COLUMNS": width} if width else {}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code in (0, 1), (args, result.output)
    return result.stdout


def assert_whole(text: str, args: list[str], width: str | None) -> None:
    assert "…" not in text, (args, width, [line for line in text.splitlines() if "…" in line][:3])
    assert not [line for line in text.splitlines() if line != line.rstrip()], (args, width, "trailing spaces")
    footers = [line for line in text.splitlines() if line.startswith("not shown at")]
    if width is None:
        assert not footers, (args, "a pipe is not limited to a width")


def header_titles(text: str) -> set[str]:
    """The column titles of the first table: the line above its rule."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("─"))
    return set(re.split(r"\s{2,}", lines[rule - 1].strip()))


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_summary_numbers_are_whole_and_match_the_json(name: str) -> None:
    data = json.loads(run(["summary", name, "--format", "json"], None))
    for width in WIDTHS:
        text = run(["summary", name], width)
        assert_whole(text, ["summary", name], width)
        shown = header_titles(text)
        for key, title in (("params", "Params"), ("macs", "MACs"), ("flops", "FLOPs")):
            if title not in shown:
                assert re.search(rf"not shown at {width} columns: .*\b{title}\b", text), (name, width, title)
                continue
            for layer in data["layers"]:
                if layer[key]:
                    assert f"{layer[key]:,}" in text, (name, width, layer["name"], key)
            assert f"{data['totals'][key]:,}" in text
        if width is None:  # every name whole, every default number present
            assert all(layer["name"] in text for layer in data["layers"])


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_every_view_and_format_is_whole(name: str) -> None:
    for args in (["summary", name, "--depth", "1"], ["summary", name, "--rf"], ["summary", name, "--columns", "all"],
                 ["rf", name], ["check", name], ["audit", name]):
        for width in ("80", None):  # 120 lies between: the default summary test covers it
            assert_whole(run(args, width), args, width)
    for fmt in ("markdown", "csv"):
        text = run(["summary", name, "--format", fmt], "80")
        assert "…" not in text
    csv_text = run(["summary", name, "--format", "csv"], None)
    assert "×" not in csv_text  # shapes as 3x224x224: tools that read CSV choke on ×


@pytest.mark.parametrize("pair", [("alexnet", "alexnet-torchvision"), ("resnet18", "resnet50"),
                                  ("vgg-a", "vgg-e"), ("googlenet", "lenet5")])
def test_diff_is_whole_and_keeps_its_marks(pair: tuple[str, str]) -> None:
    data = json.loads(run(["diff", *pair, "--format", "json"], None))
    for width in WIDTHS:
        text = run(["diff", *pair], width)
        assert_whole(text, ["diff", *pair], width)
        if any(layer["status"] == "changed" for layer in data["layers"]):
            assert re.search(r"^ ~ ", text, re.M), (pair, width, "the ~ marker column went missing")
    pipe = run(["diff", *pair], None)
    assert f"{data['left']['params']:,}" in pipe and f"{data['right']['macs']:,}" in pipe


def test_list_is_whole() -> None:
    for width in WIDTHS:
        assert_whole(run(["list"], width), ["list"], width)


def test_help_never_breaks_inside_a_word() -> None:
    for command in ([], ["summary"], ["check"], ["bench"], ["verify"], ["diff"], ["audit"]):
        text = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"}).stdout
        assert "[[SPEC]" not in text, command  # an optional argument is bracketed once ([SPEC]...)
        assert "f p16" not in text and "…" not in text, command
        # choices wrap only between values: no line holds a choice cut in two
        assert not re.search(r"\b(fp|bf|tf)\s*│", text), command


@pytest.mark.needs_torch
@pytest.mark.parametrize(("name", "widths"), [("lenet5", WIDTHS), ("resnet18", ("120",))])
def test_verify_is_whole(name: str, widths: tuple[str | None, ...]) -> None:
    for width in widths:
        text = run(["verify", name, "--repeats", "0"], width)
        assert_whole(text, ["verify", name], width)
        assert re.search(r"params, PyTorch.s sum\(p\.numel\(\)\)\s+[\d,]+ (\([\d,]+ fixed\) )?✓", text), text
