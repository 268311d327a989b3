"""Output is never half-written: files are replaced whole (a kill mid-write leaves the old one), a file that
cannot be written is one line with exit 2, and so is a full standard output; a closed pipe ends quietly."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convaudit.atomic_write import write_atomically
from convaudit.cli import app
from convaudit.errors import ConvauditError

from .conftest import ROOT

OLD = "the previous report, which a failed write must leave as it was\n"

# Runs the CLI with os.fsync replaced by a SIGKILL of the process itself: the new text has been written to
# the temporary file, which is about to be flushed to the disk and renamed over the target.
KILLED_BEFORE_THE_RENAME = """
import os, signal, sys
os.fsync = lambda descriptor: os.kill(os.getpid(), signal.SIGKILL)
sys.argv = ["convaudit", *sys.argv[1:]]
from convaudit.__main__ import run
run()
"""


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "140"})


def one_line_error(result, needle: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message and needle in message, message
    return message


@pytest.mark.parametrize("command", [["report", "lenet5"], ["draw", "lenet5"]])
def test_a_kill_mid_write_leaves_the_old_file(tmp_path: Path, command: list[str]) -> None:
    target = tmp_path / "out.html"
    target.write_text(OLD, encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", KILLED_BEFORE_THE_RENAME, *command, "-o", str(target)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == -9, (done.returncode, done.stderr[-1000:])  # killed, as by `kill -9` mid-write
    assert target.read_text(encoding="utf-8") == OLD
    leftovers = [path.name for path in tmp_path.iterdir() if path.name != "out.html"]
    assert all(name.startswith(".out.html.") and name.endswith(".partial") for name in leftovers), leftovers
    result = run(*command, "-o", str(target))  # and without the kill, the file is replaced whole
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8").startswith(("<!DOCTYPE html>", "<svg"))


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "report.html"
    target.write_text(OLD, encoding="utf-8")

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    one_line_error(run("report", "lenet5", "-o", str(target)), f"cannot write {target}: No space left on device")
    assert target.read_text(encoding="utf-8") == OLD
    assert [path.name for path in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.parametrize("command", ["report", "draw"])
def test_unwritable_targets_are_one_line(tmp_path: Path, command: str) -> None:
    one_line_error(run(command, "lenet5", "-o", str(tmp_path)), f"cannot write {tmp_path}: Is a directory")
    missing = tmp_path / "no" / "such" / "folder.html"
    one_line_error(run(command, "lenet5", "-o", str(missing)), "No such file or directory")
    one_line_error(run(command, "lenet5", "-o", "/dev/full"), "cannot write /dev/full: No space left on device")
    one_line_error(run(command, "lenet5", "-o", "/proc/version"), "cannot write /proc/version")


def test_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        one_line_error(run("report", "lenet5", "-o", str(folder / "r.html")), "Permission denied")
    finally:
        folder.chmod(0o700)


def test_the_file_keeps_its_mode_and_its_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.svg"
    real.write_text(OLD, encoding="utf-8")
    real.chmod(0o640)
    link = tmp_path / "link.svg"
    link.symlink_to(real)
    write_atomically(link, "<svg/>\n")
    assert link.is_symlink() and real.read_text(encoding="utf-8") == "<svg/>\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.svg"
    write_atomically(fresh, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask  # as open(path, "w") would create it


def test_write_atomically_raises_the_project_error(tmp_path: Path) -> None:
    with pytest.raises(ConvauditError, match="Is a directory"):
        write_atomically(tmp_path, "x")


@pytest.mark.parametrize("args", [["summary", "alexnet"], ["summary", "alexnet", "--format", "json"],
                                  ["--version"], ["schema"]])
def test_a_full_standard_output_is_one_line(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "convaudit", *args], stdout=full, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stderr == "error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("args", [["summary", "resnet50", "--format", "json"], ["summary", "resnet50"], ["check"],
                                  ["--version"]])
def test_a_closed_pipe_ends_quietly(args: list[str]) -> None:
    """`convaudit … | head -1`: the reader goes away; no traceback, exit 141 as a shell reports SIGPIPE."""
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the first byte: every write fails, every run alike
    try:
        done = subprocess.run([sys.executable, "-m", "convaudit", *args], stdout=writer, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=120)
    finally:
        os.close(writer)
    assert done.returncode == 141, (done.returncode, done.stderr)
    assert done.stderr == ""
