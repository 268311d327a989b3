"""Targets as hostile input: a spec never makes convaudit run code, and a factory's failures, prints and exits
are one line on stderr, never an internal error or a corrupted standard output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.cli import app

from .conftest import ROOT

WIDTH = {"COLUMNS": "140"}

# A spec whose recorded origin would leave files behind: os.system with a shell command, and a module beside
# the spec that writes a file as it is imported.
PAYLOAD_SPEC = """name: t
input: [3, 8, 8]
imported: {{from: "{origin}", args: {args}}}
layers:
  - {{type: conv, out: 4, kernel: 3}}
  - {{type: relu}}
"""
EVIL_MODULE = "open('IMPORTED', 'w').write('ran')\n\ndef build():\n    open('CALLED', 'w').write('ran')\n"


def run(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDTH)


def one_line_error(result, needle: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and needle in message, message
    assert "Traceback" not in result.output and "internal error" not in result.output
    return message


@pytest.fixture
def payloads(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)  # a relative command and an importable folder: as the attacker would hope
    (tmp_path / "evil_origin.py").write_text(EVIL_MODULE, encoding="utf-8")
    shell = tmp_path / "shell.yaml"
    shell.write_text(PAYLOAD_SPEC.format(origin="os:system", args='{command: "echo ran > PWNED"}'), encoding="utf-8")
    module = tmp_path / "module.yaml"
    module.write_text(PAYLOAD_SPEC.format(origin="evil_origin:build", args="{}"), encoding="utf-8")
    return {"shell": shell, "module": module}


def left_behind(folder: Path) -> list[str]:
    return sorted(name for name in ("PWNED", "IMPORTED", "CALLED") if (folder / name).exists())


@pytest.mark.parametrize("command", [["summary"], ["check"], ["rf"], ["audit"], ["split"], ["draw"],
                                     ["report", "-o", "r.html"], ["diff", "lenet5"], ["list"], ["schema"]])
def test_no_command_runs_what_a_spec_names(payloads: dict[str, Path], tmp_path: Path, command: list[str]) -> None:
    for spec in payloads.values():
        args = command if command[0] in ("list", "schema") else [command[0], str(spec), *command[1:]]
        result = run(*args)
        assert result.exit_code in (0, 1), result.output
    assert left_behind(tmp_path) == []


@pytest.mark.needs_torch
def test_verify_builds_from_the_spec_unless_told(payloads: dict[str, Path], tmp_path: Path) -> None:
    for name, spec in payloads.items():
        result = run("verify", str(spec), "--repeats", "0")
        assert result.exit_code == 0, result.output
        origin = "os:system" if name == "shell" else "evil_origin:build"
        assert result.stderr.splitlines()[0] == (f"verify: building the model from the spec; {spec} was imported "
                                                 f"from {origin}, which runs only with --against imported")
    assert left_behind(tmp_path) == []
    assert run("verify", str(payloads["shell"]), "--repeats", "0", "--against", "spec").stderr == ""


@pytest.mark.needs_torch
def test_against_imported_says_what_it_calls_first(payloads: dict[str, Path], tmp_path: Path) -> None:
    result = run("verify", str(payloads["shell"]), "--repeats", "0", "--against", "imported")
    said = result.stderr.splitlines()[0]
    assert said == f"--against imported: calling os:system(command='echo ran > PWNED'), as {payloads['shell']} " \
                   "records under imported:"
    one_line_error(result, "os:system returned int, not a torch.nn.Module")  # the user asked: it ran
    assert left_behind(tmp_path) == ["PWNED"]
    one_line_error(run("verify", "lenet5", "--against", "imported"), "records no PyTorch model it was imported from")


# ------------------------------------------------------------------ factories: the user's own code

FACTORIES = {
    "raises": "def build():\n    raise KeyError('boom')\n",
    "syntax": "def build(:\n    pass\n",
    "name_error": "undefined_name\n\ndef build():\n    pass\n",
    "exits_0": "import sys\n\ndef build():\n    sys.exit(0)\n",
    "exits_7": "import sys\n\ndef build():\n    sys.exit(7)\n",
    "returns_int": "def build():\n    return 42\n",
}


@pytest.mark.needs_torch
@pytest.mark.parametrize(("module", "needle"), [
    ("raises", "hostile_raises:build raised KeyError: 'boom'"),
    ("syntax", "hostile_syntax:build: cannot import module 'hostile_syntax': raised SyntaxError:"),
    ("name_error", "hostile_name_error:build: cannot import module 'hostile_name_error': raised NameError: name "
                   "'undefined_name' is not defined"),
    ("exits_0", "hostile_exits_0:build called sys.exit(0) instead of returning a model"),
    ("exits_7", "hostile_exits_7:build called sys.exit(7) instead of returning a model"),
    ("returns_int", "hostile_returns_int:build returned int, not a torch.nn.Module"),
])
def test_a_failing_factory_is_one_line(tmp_path: Path, monkeypatch, module: str, needle: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, f"hostile_{module}", raising=False)
    (tmp_path / f"hostile_{module}.py").write_text(FACTORIES[module], encoding="utf-8")
    path_before = list(sys.path)
    for command in ("summary", "import"):
        one_line_error(run(command, f"hostile_{module}:build"), needle)
    assert sys.path == path_before  # the working directory was importable only while the factory ran


@pytest.mark.needs_torch
@pytest.mark.parametrize(("arg", "needle"), [
    ("bogus=1", "torchvision:resnet18 raised TypeError:"),
    ("num_classes=-5", "torchvision:resnet18 raised RuntimeError:"),
    (f"num_classes={2**70}", "--arg num_classes: refused: a number larger than 2^63"),
    ("num_classes=2**70", "torchvision:resnet18 raised TypeError:"),
])
def test_bad_builder_arguments_are_one_line(arg: str, needle: str) -> None:
    one_line_error(run("import", "torchvision:resnet18", "--arg", arg, "--input", "32"), needle)


CHATTY = '''import ctypes, os, sys
import torch

def build():
    print("hello from print")
    sys.stdout.write("hello from sys.stdout\\n")
    os.write(1, b"hello from fd 1\\n")
    ctypes.CDLL(None).printf(b"hello from printf\\n")
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
'''


@pytest.mark.needs_torch
@pytest.mark.parametrize("command", [["summary", "--format", "json"], ["import"]])
def test_what_a_factory_prints_goes_to_stderr(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "chatty.py").write_text(CHATTY, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "convaudit", command[0], "chatty:build", "--input", "16",
                           *command[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "hello" not in done.stdout
    for source in ("print", "sys.stdout", "fd 1", "printf"):
        assert f"hello from {source}" in done.stderr, done.stderr
    if command[0] == "summary":
        assert json.loads(done.stdout)["totals"]["params"] == 4 * 3 * 3 * 3 + 4  # conv 3→4, 3×3, with bias
    else:
        assert done.stdout.startswith("# build: imported by convaudit from chatty:build\n")


@pytest.mark.needs_torch
def test_bench_takes_a_target_with_devices(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny_net.py").write_text(
        "import torch\n\ndef build():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),"
        " torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # the spawned workers find nothing of it: they read a spec
    result = run("bench", "tiny_net:build", "--input", "8", "--devices", "2", "--batch", "2", "--repeats", "1",
                 "--warmup", "0", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["devices"] == 2 and data["bytes_match"] and data["params_match"]
    assert data["spec"] == "build"
