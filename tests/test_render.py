"""Formatting helpers and renderers, at a fixed width."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from convaudit.core.analysis import analyze
from convaudit.render.formatting import fmt_bytes, fmt_int, fmt_share, fmt_si, rounding_note
from convaudit.render.summary import View, parse_columns, summary_markdown, summary_table
from convaudit.render.summary_data import summary_csv
from convaudit.spec.library import load


def test_number_helpers() -> None:
    assert fmt_int(724406816) == "724,406,816"
    assert fmt_si(724406816) == "724.4 M"
    assert fmt_si(15470264320) == "15.47 G"
    assert fmt_si(999) == "999"
    assert fmt_bytes(243860896) == "232.6 MiB"
    assert fmt_bytes(512) == "512 B"
    assert fmt_share(1, 4) == "25.0%" and fmt_share(0, 4) == ""


def test_parse_columns() -> None:
    assert parse_columns(None) is None  # the default set, chosen per network
    assert parse_columns("default,other_ops")[-1] == "other_ops"
    assert parse_columns("layer,layer") == ("layer",)


def test_rounding_notes() -> None:
    report = analyze(load("alexnet").with_input(224, 224))
    assert rounding_note(report.layer("conv1")) == "⚠ 54.25"
    assert rounding_note(report.layer("conv2")) == ""


def test_table_renders_at_a_fixed_width() -> None:
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(summary_table(View(analyze(load("lenet5")))))
    text = console.export_text()
    assert "C3" in text and "1,516" in text and "60,840" in text
    assert "non-trainable 840" in text


def test_markdown_and_csv_totals() -> None:
    report = analyze(load("lenet5"))
    md = summary_markdown(View(report))
    assert "| **Total** |" in md and "**60,840**" in md
    last = summary_csv(report).strip().splitlines()[-1].split(",")
    assert last[0] == "TOTAL" and "60840" in last


# ------------------------------------------------------------------ user text is escaped, never interpreted

HOSTILE = """\
name: hostile
title: "[bold red]hot title"
source: "[link=x]src[/link]"
input: [3, 16, 16]
layers:
  - {type: conv, name: "[bold red]hot", out: 4, kernel: 3, stride: 2}
  - {type: relu, name: "[/]"}
  - {type: conv, name: "esc\\x1b[31mred\\x07", out: 4, kernel: 1}
  - {type: linear, name: "pipe|name", out: 2, in: 99}
"""


def test_markup_and_control_characters_in_names_print_literally(write_spec) -> None:
    from typer.testing import CliRunner

    from convaudit.cli import app

    path = str(write_spec(HOSTILE))
    for args in (["summary", path], ["check", path], ["rf", path], ["diff", path, path],
                 ["summary", path, "-f", "markdown"], ["summary", path, "-f", "csv"],
                 ["check", path, "-f", "markdown"]):
        for width in ("80", None):
            result = CliRunner().invoke(app, args, env={"COLUMNS": width} if width else {})
            assert result.exit_code in (0, 1), (args, result.output)
            out = result.stdout
            assert "\x1b" not in out and "\x07" not in out, args  # controls shown as escapes, never sent
            assert "[bold red]hot" in out, args  # markup shown as written
            if args[0] != "check":  # check names only the layers with findings
                assert "\\x1b[31mred\\x07" in out and "[/]" in out, args
    markdown = CliRunner().invoke(app, ["summary", path, "-f", "markdown"]).stdout
    assert "pipe\\|name" in markdown  # a | in a name does not split the Markdown row


WORDS = ["conv1", "64×112×112", "118,013,952", "⚠ 54.25", "中文层", "é", "layer1.0.downsample.0", "", "1", "🙂"]


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 4), columns=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=5),
       footer=st.booleans(), data=st.data())
def test_natural_tables_drawn_directly_are_what_rich_draws(rows, columns, footer, data) -> None:
    """Output to a pipe draws a Fitted table's lines itself; they must be Rich's lines, character for character
    (wide characters, right-justified numbers, footers, titles), and cells Rich must draw fall back to it."""
    import pytest
    from rich.text import Text

    from convaudit.render.output import FitColumn, Fitted, piped_text

    def cell() -> str:
        return data.draw(st.sampled_from(WORDS + ["two\nlines"]))

    made = [FitColumn(f"c{i}", data.draw(st.sampled_from(WORDS)), [cell() for _ in range(rows)],
                      footer=cell() if footer else "", numeric=numeric, wrap=wrap)
            for i, (numeric, wrap) in enumerate(columns)]
    table = Fitted(made, show_footer=footer, title=Text("title"), caption=Text("caption"))
    direct = piped_text(table)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Fitted, "plain_lines", lambda *args: None)
        assert piped_text(table) == direct
