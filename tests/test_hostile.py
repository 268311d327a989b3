"""Hostile and extreme input: every command answers with a result or one clear line (exit 2), never a traceback,
an internal error (exit 3), a hang or unbounded memory.

Each test is one failure that was found by hand; the mutation test at the end looks for more.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app
from convaudit.core.fields import parse_number
from convaudit.core.units import fixed, fmt_bytes, significant
from convaudit.core.windows import format_fraction
from convaudit.errors import ConvauditError, Where

WIDTH = {"COLUMNS": "140"}
BASE = """name: t
input: [3, 32, 32]
layers:
  - {type: conv, out: 8, kernel: 3}
  - {type: relu}
"""


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDTH)


def one_line_error(result, needle: str = "", code: int = 2) -> str:
    """The result is exactly one 'error: …' line on stderr, with `code`, and nothing on stdout."""
    assert result.exit_code == code, (result.exit_code, result.output)
    message = result.stderr.strip()
    assert message.startswith("error: "), message
    assert "\n" not in message and "Traceback" not in result.output, message
    assert "\x1b" not in message and "\x07" not in message
    assert needle in message, message
    assert result.stdout == ""
    return message


def spec_with(write_spec, layer: str = "{type: conv, out: 8, kernel: 3}", extra: str = "") -> Path:
    return write_spec(f"name: t\ninput: [3, 32, 32]\nlayers:\n  - {layer}\n{extra}")


# ------------------------------------------------------------------ numbers: bounded before they are built

@pytest.mark.parametrize("text", ["1e999999999", "1e5000", "-1e400", "1e-999999999"])
def test_huge_exponents_are_refused_before_the_number_is_built(text: str) -> None:
    # Fraction("1e999999999") computes 10**999999999: it would never finish.
    with pytest.raises(ValueError, match="exponent"):
        parse_number(text)


def test_numbers_past_2_63_are_refused() -> None:
    assert parse_number(2**63) == 2**63 and parse_number("60e6") == 60_000_000 and parse_number("2/3") == Fraction(2, 3)
    for value in (2**63 + 1, -(2**64), 10**5000, "1e19", 1e300):
        with pytest.raises(ValueError, match="refused"):
            parse_number(value)
    for value in (float("nan"), float("inf"), "nan", "inf", "1/0", "9" * 101):
        with pytest.raises(ValueError):
            parse_number(value)


def test_huge_alpha_is_a_spec_error(write_spec) -> None:
    path = spec_with(write_spec, '{type: lrn, size: 5, alpha: "1e999999999"}')
    one_line_error(run("summary", str(path)), "layers[0].alpha: refused: the exponent")


def test_huge_claim_value_is_a_spec_error(write_spec) -> None:
    path = spec_with(write_spec, extra='claims:\n  params: "1e999999999"\n')
    one_line_error(run("audit", str(path)), "claims.params: refused")
    path = spec_with(write_spec, extra='claims:\n  params: "1e5000"\n')
    one_line_error(run("audit", str(path)), "claims.params: refused")


@pytest.mark.parametrize("literal", ["9" * 5000, "0x" + "f" * 5000, str(2**63 + 1), "0" + "7" * 30])
def test_huge_int_literals_are_refused(write_spec, literal: str) -> None:
    # Python refuses to read ints of more than 4,300 digits; 2^63 is the stated limit.
    path = spec_with(write_spec, f"{{type: conv, out: {literal}, kernel: 3}}")
    one_line_error(run("summary", str(path)), "layers[0].out: refused")


def test_huge_input_in_the_spec_is_refused(write_spec) -> None:
    path = write_spec(f"name: t\ninput: [3, {2**64}, 32]\nlayers:\n  - {{type: relu}}\n")
    one_line_error(run("summary", str(path)), "input: refused")


@pytest.mark.parametrize("size", ["9" * 5000, "1" + "0" * 400, f"224x{2**63 + 1}", "x" * 10_000])
def test_huge_input_option_is_refused(size: str) -> None:
    message = one_line_error(run("summary", "alexnet", "--input", size), "--input")
    assert len(message) < 300  # the value is described, not echoed


# ------------------------------------------------------------------ formatting exact values without floats

def test_fixed_and_significant_round_exactly() -> None:
    assert fixed(Fraction(217, 4), 1) == "54.2"  # 54.25: half to even, like '%.1f'
    assert fixed(Fraction(-1, 8), 3) == "-0.125"
    assert fixed(Fraction(10**400, 3), 1) == "3" * 400 + ".3"  # 10^400 / 3: a float would overflow
    assert significant(Fraction(7244068, 10**4), 4) == "724.4" and significant(Fraction(99996, 100), 4) == "1000"
    assert significant(Fraction(500003, 10), 4) == "50000"  # never '5e+04'


def test_format_fraction_and_bytes_handle_values_past_a_float() -> None:
    huge = 10**400
    assert format_fraction(Fraction(huge + 1, 4)) == str(huge // 4) + ".25"
    assert format_fraction(Fraction(huge, 3)) == f"{huge}/3 ({'3' * 400}.333…)"
    assert format_fraction(Fraction(163, 3)) == "163/3 (54.333…)"
    assert fmt_bytes(243_860_896) == "232.6 MiB"  # 243860896 / 2^20 = 232.56…
    assert fmt_bytes(huge).endswith(" EiB") and fmt_bytes(huge).startswith(str(huge // 2**60)[:20])


@pytest.mark.parametrize("command", ["summary", "check", "rf"])
def test_inputs_near_the_limit_run(command: str, write_spec) -> None:
    # 2^62 on a side: 2^124 pixels per map; every total and byte count is printed exactly.
    path = write_spec(BASE)
    result = run(command, str(path), "--input", str(2**62))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


# ------------------------------------------------------------------ terminal injection and markup

def test_error_lines_escape_control_characters() -> None:
    error = ConvauditError("unknown layer type 'conv\x1b]0;PWNED\x07'\nsecond line", Where("a\x1b.yaml", 3, "type"))
    text = str(error)
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text
    assert "\\x1b]0;PWNED\\x07" in text and "a\\x1b.yaml:3" in text


def test_osc_in_a_type_name_never_reaches_the_terminal(write_spec) -> None:
    path = spec_with(write_spec, '{type: "conv\\e]0;PWNED\\a", out: 8, kernel: 3}')
    one_line_error(run("summary", str(path)), "\\x1b]0;PWNED\\x07")


def test_markup_in_a_layer_name_is_shown_as_written(write_spec) -> None:
    # '[/]' is a Rich closing tag: printed unescaped it raised MarkupError (exit 3).
    path = spec_with(write_spec, '{type: conv, name: "[/]", out: 8, kernel: 3}')
    for command in ("summary", "rf", "check"):
        result = run(command, str(path))
        assert result.exit_code == 0, result.output
        assert "[/]" in result.stdout or command == "check"  # a clean check names no layer


# ------------------------------------------------------------------ expressions

BLOCK = """name: t
input: [3, 32, 32]
blocks:
  b:
    params: {{w: 8}}
    layers:
      - {{type: conv, out: "{expression}", kernel: 1}}
layers:
  - {{block: b}}
"""


@pytest.mark.parametrize("expression", [
    " + ".join(["$w"] * 100_000),  # ast raised RecursionError while building the tree
    " * ".join(["$w"] * 1_000),  # our evaluator recursed once per factor
    "$w" + " * (1" * 300 + ")" * 300,
])
def test_long_expressions_are_refused_without_recursing(write_spec, expression: str) -> None:
    path = write_spec(BLOCK.format(expression=expression))
    one_line_error(run("summary", str(path)), "refused: an expression of")


def test_expression_values_past_2_63_are_refused(write_spec) -> None:
    path = write_spec(BLOCK.format(expression=" * ".join(["$w"] * 30)))  # 8^30 = 2^90
    one_line_error(run("summary", str(path)), "larger than 2^63")
    path = write_spec(BLOCK.format(expression="$w * 4 // 2"))
    assert run("summary", str(path)).exit_code == 0


# ------------------------------------------------------------------ claims accepted but wrong

@pytest.mark.parametrize(("claim", "needle"), [
    ("{claim: params, value: 224, variant: [a]}", "claims[0].variant: expected the name of one of"),
    ('{claim: params, value: 224, tol: "-5%"}', "claims[0].tol: a tolerance cannot be negative"),
    ("{claim: params, value: 224, tol: -3}", "claims[0].tol: a tolerance cannot be negative"),
    ("{claim: params, value: 224, at: [true, true]}", "claims[0].at: expected an input size"),
    ("{claim: params, value: 224, at: true}", "claims[0].at: expected an input size"),
    ('{claim: params, value: "1e999999999", tol: 1}', "claims[0].value: refused"),
])
def test_bad_claims_are_spec_errors(write_spec, claim: str, needle: str) -> None:
    path = spec_with(write_spec, extra=f"claims:\n  - {claim}\n")
    one_line_error(run("audit", str(path)), needle)


def test_an_empty_variant_after_plus_is_refused() -> None:
    # 'googlenet+' used to run the base network silently.
    one_line_error(run("summary", "googlenet+"), "names no variant after '+'")


# ------------------------------------------------------------------ extends: what a spec may read

def test_extends_may_not_read_outside_the_spec_folder(tmp_path: Path, monkeypatch) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("name: t\ninput: [1, 2, 3]\nlayers: [{type: relu}]\nTOKEN_abc123: 1\n", encoding="utf-8")
    folder = tmp_path / "specs"
    folder.mkdir()
    for reference in ("/etc/passwd", "/proc/self/environ", "../secret.yaml", str(secret)):
        path = folder / "net.yaml"
        path.write_text(f"name: mine\nextends: {reference}\n", encoding="utf-8")
        message = one_line_error(run("summary", str(path)), "extends: refused")
        assert "outside this spec's folder" in message and "TOKEN" not in message and "root:" not in message
    (folder / "link.yaml").symlink_to(secret)  # a symlink inside the folder is judged by its target
    (folder / "net.yaml").write_text("name: mine\nextends: link.yaml\n", encoding="utf-8")
    one_line_error(run("summary", str(folder / "net.yaml")), "outside this spec's folder")
    monkeypatch.setenv("CONVAUDIT_EXTENDS_ANYWHERE", "1")  # the user may allow it
    message = one_line_error(run("summary", str(folder / "net.yaml")), "TOKEN_abc123")
    assert "(extended by " in message and "net.yaml:2: extends" in message


def test_extends_reads_its_own_folder_and_bundled_names(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "a.yaml").write_text("name: a\nextends: sub/base.yaml\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("name: b\nextends: alexnet\n", encoding="utf-8")
    assert run("summary", str(tmp_path / "a.yaml")).exit_code == 0
    assert run("summary", str(tmp_path / "b.yaml")).exit_code == 0


def test_an_error_in_the_base_names_the_extending_spec(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("name: t\ninput: [1, 2]\nlayers: [{type: relu}]\n", encoding="utf-8")
    (tmp_path / "net.yaml").write_text("# mine\nname: mine\nextends: base.yaml\n", encoding="utf-8")
    message = one_line_error(run("summary", str(tmp_path / "net.yaml")), "base.yaml:2: input:")
    assert message.endswith(f"(extended by {tmp_path / 'net.yaml'}:3: extends)")
    (tmp_path / "net.yaml").write_text("name: mine\nextends: nosuchnet\n", encoding="utf-8")
    one_line_error(run("summary", str(tmp_path / "net.yaml")), "net.yaml:2: extends: 'nosuchnet' is neither")


# ------------------------------------------------------------------ bench options

@pytest.mark.needs_torch
@pytest.mark.parametrize("option", [["--peak", "nan"], ["--peak", "inf"], ["--peak", "-1"], ["--peak", "1e999"],
                                    ["--peak", "10", "--bandwidth", "-5"], ["--bandwidth", "nan"],
                                    ["--peak", "10", "--bandwidth", "inf"]])
def test_bench_refuses_non_positive_or_non_finite_ceilings(option: list[str]) -> None:
    one_line_error(run("bench", "lenet5", *option), option[-2])
