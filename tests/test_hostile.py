"""Hostile and extreme input: every command answers with a result or one clear line (exit 2), never a traceback,
an internal error (exit 3), a hang or unbounded memory.

Each test is one failure that was found by hand; the mutation test at the end looks for more.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    (tmp_path / "base.yaml").write_text("name: t\ninput: [1]\nlayers: [{type: relu}]\n", encoding="utf-8")
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


# ------------------------------------------------------------------ verify's memory guard sees every allocation

SPARSE = """name: t
input: [6, 400, 400]
layers:
  - type: conv
    out: 16
    kernel: 5
    connections: [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 4, 5], [0, 1, 5], [0, 1, 2, 3], [1, 2, 3, 4],
                  [2, 3, 4, 5], [0, 3, 4, 5], [0, 1, 4, 5], [0, 1, 2, 5], [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5],
                  [0, 1, 2, 3, 4, 5]]
  - {type: tanh}
"""


def fake_free(monkeypatch, nbytes: int) -> None:
    import convaudit.pytorch.runtime as runtime

    monkeypatch.setattr(runtime, "available_bytes", lambda device: nbytes)


def refuse_building(monkeypatch) -> None:
    """Fail the test if verify builds a real model: the guard must refuse first."""
    import convaudit.pytorch.verify as verify

    def built(*args, **kwargs):
        raise AssertionError("verify built the model")

    monkeypatch.setattr(verify, "build_model", built)


@pytest.mark.needs_torch
def test_the_guard_counts_a_sparse_convs_gathered_copies(write_spec, monkeypatch) -> None:
    from convaudit.core.analysis import analyze
    from convaudit.core.memory import run_memory, training_memory
    from convaudit.pytorch.runtime import model_need
    from convaudit.spec.parser import load_spec

    report = analyze(load_spec(write_spec(SPARSE)), batch=8)
    # The module gathers x[:, row] per output map: Σ|row| = 6·3 + 9·4 + 6 = 60 maps of 396×396, at batch 8, fp32.
    gathered = 60 * 396 * 396 * 8 * 4
    need = model_need(report)
    assert need.workspaces >= gathered
    assert need.total >= training_memory(report, "sgd").training_total  # never less than summary says
    assert need.total > run_memory(report).total + gathered  # what the old guard counted, plus the copies
    fake_free(monkeypatch, run_memory(report).total * 2)  # the old guard let this through
    refuse_building(monkeypatch)
    message = one_line_error(run("verify", str(write_spec(SPARSE)), "--batch", "8"), "workspaces")
    assert "--force" in message


@pytest.mark.needs_torch
def test_the_guard_counts_the_rbf_differences(write_spec, monkeypatch) -> None:
    from convaudit.core.analysis import analyze
    from convaudit.pytorch.runtime import model_need
    from convaudit.spec.parser import load_spec

    text = "name: t\ninput: [16, 50, 50]\nlayers:\n  - {type: conv, out: 16, kernel: 1}\n  - {type: rbf, out: 1000}\n"
    report = analyze(load_spec(write_spec(text)), batch=64)
    differences = 64 * 1000 * (16 * 50 * 50) * 4  # B × out × in at fp32: 10.2 GB, allocated by (x − W)
    assert model_need(report).total >= differences
    fake_free(monkeypatch, differences // 2)
    refuse_building(monkeypatch)
    one_line_error(run("verify", str(write_spec(text)), "--batch", "64"), "the model needs about")


@pytest.mark.needs_torch
def test_a_hundred_million_channels_is_refused_not_an_internal_error(write_spec, monkeypatch) -> None:
    fake_free(monkeypatch, 8 * 2**30)
    refuse_building(monkeypatch)
    path = spec_with(write_spec, "{type: conv, out: 100000000, kernel: 1}")
    one_line_error(run("verify", str(path), "--repeats", "0"), "the model needs about")


@pytest.mark.needs_torch
def test_verify_stops_at_the_analysis_error_before_building(write_spec, monkeypatch) -> None:
    refuse_building(monkeypatch)
    # groups that do not divide the channels: torch's nn.Conv2d raised ValueError (exit 3)
    path = spec_with(write_spec, "{type: conv, out: 8, kernel: 3, groups: 2}")
    one_line_error(run("verify", str(path)), "layers[0].groups: conv1: input channels 3 are not divisible by groups 2")
    # a kernel larger than the map, on 4096 × 4096 channels: the module alone was 2.3 GB
    path = write_spec("name: t\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 4096, kernel: 3}\n"
                      "  - {type: conv, out: 4096, kernel: 190}\n")
    one_line_error(run("verify", str(path)), "the kernel (190) is larger than the padded input")


@pytest.mark.needs_torch
def test_verify_report_names_pytorchs_refusal_to_build(write_spec) -> None:
    import torch

    from convaudit.core.analysis import analyze
    from convaudit.pytorch.verify import verify_report
    from convaudit.spec.parser import load_spec

    report = analyze(load_spec(spec_with(write_spec, "{type: conv, out: 8, kernel: 3, groups: 2}")))
    result = verify_report(report, torch.device("cpu"), repeats=0)
    assert result.torch_error == "PyTorch cannot build conv1: ValueError: in_channels must be divisible by groups"
    assert not result.passed and result.explanation


@pytest.mark.needs_torch
def test_an_allocation_failure_past_force_is_one_line(monkeypatch) -> None:
    import convaudit.pytorch.verify as verify

    def allocate(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 42949672960 bytes. Error code 12 (Cannot allocate memory)")

    fake_free(monkeypatch, 1024)
    monkeypatch.setattr(verify, "build_model", allocate)
    message = one_line_error(run("verify", "lenet5", "--force", "--repeats", "0"), "out of memory")
    assert "can't allocate memory" in message


# ------------------------------------------------------------------ mutating the bundled specs

ODD_VALUES = [None, True, False, 0, -1, -(2**31), 2**63 + 1, 10**30, 1.5, -0.5, "1e999999999", "1e5000", "", "x",
              "\x1b]0;PWNED\x07", "a\rb\x00", "[/]", "[bold red]x", "$missing", "$a * $b", "nan", "-5%", [], [1],
              [[]], [True, True], {}, {"a": 1}, {"type": "conv"}, 1, 2, 3, 7, 224, 4096]


def _slots(value, found: list) -> list:
    """Every (container, key) in a YAML tree, depth first."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in list(items):
        found.append((value, key))
        _slots(child, found)
    return found


@st.composite
def mutated_spec(draw: st.DrawFn) -> tuple[str, dict]:
    import yaml

    path = draw(st.sampled_from(ARCHITECTURES))
    data = yaml.safe_load(BUNDLED_TEXT[path])  # anchors load as shared objects: a mutation may show twice
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(data, [])
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        if draw(st.booleans()) and key in (container if isinstance(container, dict) else range(len(container))):
            del container[key]
        else:
            container[key] = draw(st.sampled_from(ODD_VALUES) | st.integers(-(10**6), 10**6) | st.text(max_size=8))
    return path.name, data


ARCHITECTURES = sorted((Path(__file__).resolve().parent.parent / "architectures").glob("*.yaml"))
BUNDLED_TEXT = {path: path.read_text(encoding="utf-8") for path in ARCHITECTURES}  # read once: draws stay stable


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(spec=mutated_spec(), command=st.sampled_from(["summary", "check", "audit"]))  # rf: see README's limits
def test_mutated_bundled_specs_give_a_result_or_one_line(tmp_path: Path, spec: tuple[str, dict],
                                                         command: str) -> None:
    import time

    import yaml

    name, data = spec
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=False), encoding="utf-8")
    began = time.monotonic()
    result = run(command, str(path))
    elapsed = time.monotonic() - began
    assert elapsed < 30, f"{command} took {elapsed:.1f} s"
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output[-2000:])
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output  # nothing reaches the terminal raw
    if result.exit_code == 2:
        message = result.stderr.strip()
        assert message.startswith("error: ") and "\n" not in message, message
