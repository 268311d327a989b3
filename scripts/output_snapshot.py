"""Every command's output on every bundled architecture, written to a folder, to compare before and after a change.

    python scripts/output_snapshot.py DIR            write one file per (command, format, width) into DIR
    python scripts/output_snapshot.py DIR --compare  exit 1 and list what differs from DIR

The commands run in this process through Typer's CliRunner, at fixed widths (80 and 200 columns) and piped.
Outputs with timings (verify, bench) are not included; `report`'s file is included.
A structural change should leave every file byte-identical.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


def commands() -> list[str]:
    names = sorted(path.stem for path in (ROOT / "architectures").glob("*.yaml"))
    runs: list[str] = ["list", "list --format json", "list --format markdown", "schema", "check",
                       "check --input 224", "audit", "audit --explain", "audit --format json"]
    for name in names + ["googlenet+aux", "resnet50+v1"]:
        runs += [f"summary {name}", f"summary {name} --format json", f"summary {name} --format csv",
                 f"summary {name} --format markdown", f"summary {name} --depth 1", f"summary {name} --rf",
                 f"summary {name} --columns all", f"summary {name} --batch 8 --dtype bf16 --optimizer sgd",
                 f"rf {name}", f"rf {name} --format json", f"rf {name} --format markdown",
                 f"check {name}", f"check {name} --format json", f"check {name} --format markdown",
                 f"check {name} --input 225", f"check {name} --input 230",
                 f"audit {name} --explain", f"report {name}", f"draw {name}", f"draw {name} --depth 1",
                 f"diff {name} --input 224 --input 227"]
        for strategy in ("columns", "model", "data"):
            runs += [f"split {name} --strategy {strategy}", f"split {name} --strategy {strategy} --format json",
                     f"split {name} --strategy {strategy} --format csv --devices 3"]
        runs += [f"split {name} --format markdown --device-memory 3GiB"]
    runs += ["diff vgg16 vgg19", "diff alexnet alexnet-torchvision --changed", "diff alexnet --strategy columns "
             "--strategy data", "diff resnet18 --devices 2 --devices 4 --format json"]
    return runs


def run_all(folder: Path, compare: bool) -> int:
    from convaudit.cli import app

    os.chdir(ROOT)
    folder.mkdir(parents=True, exist_ok=True)
    differ = []
    runner = CliRunner()
    for index, args in enumerate(commands()):
        for width in ("80", "200", None):
            if width is None and not args.startswith(("summary", "check", "split", "rf")) or \
                    (width == "200" and args.startswith(("report", "draw", "schema"))):
                continue
            env = {"COLUMNS": width} if width else {}
            argv = shlex.split(args)
            if args.startswith("report"):
                argv += ["-o", str(folder / "report.tmp")]
            result = runner.invoke(app, argv, env=env)
            text = f"exit {result.exit_code}\n--- stdout\n{result.stdout}"
            if args.startswith("report"):
                text += "--- file\n" + (folder / "report.tmp").read_text(encoding="utf-8")
            key = f"{index:04d}-{width or 'piped'}-" + "_".join(args.split()).replace("/", "~")[:120]
            path = folder / f"{key}.txt"
            if compare:
                if not path.exists() or path.read_text(encoding="utf-8") != text:
                    differ.append(f"{args} (width {width or 'piped'})")
            else:
                path.write_text(text, encoding="utf-8")
    if compare:
        for line in differ:
            print(f"differs: {line}")
        print(f"{len(differ)} outputs differ")
        return 1 if differ else 0
    print(f"wrote {len(list(folder.iterdir()))} outputs to {folder}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(run_all(Path(sys.argv[1]).resolve(), "--compare" in sys.argv))
