"""Import models and tabulate how exact convaudit is on each: the rows of the README's timm and torchvision tables.

    python scripts/timm_table.py [--all] [--fvcore] [--verify] [--keep DIR] [--write]
    python scripts/torchvision_table.py [--fvcore] [--verify] [--keep DIR] [--write]

Per model, with random weights and nothing downloaded (HF_HUB_OFFLINE=1; timm's pretrained=False):
- imports: traced at the model's own input, or the operators that stop it (all of them, named);
- params: ours against PyTorch's sum(p.numel()) (parameters the eval graph never reads named apart);
- MACs against FlopCounterMode: its forward FLOPs on the meta device, halved, against the MACs of our layers it
  counts (convolutions and matrix products; its convention);
- with --fvcore, MACs against fvcore with verify's documented conversion; with --verify, `verify --against`;
- the seconds taken (build, trace, read, check).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from convaudit.core.analysis import analyze  # noqa: E402
from convaudit.errors import ConvauditError  # noqa: E402
from convaudit.importers import read, spec_of  # noqa: E402
from convaudit.importers.targets import build  # noqa: E402

HEADER = ["| family | model | input | imports | params = sum(p.numel()) | MACs vs FlopCounterMode | "
          "MACs vs fvcore | verify --against | s |", "|---|---|---|---|---|---|---|---|---:|"]


def escape(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|")


def flop_counter_cell(target: str, args: dict[str, Any], report: Any) -> tuple[str, bool]:
    """FlopCounterMode's forward FLOPs on the meta device, halved, against the MACs of the layers it counts."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convaudit.pytorch.verify import counted_by_torch

    model = build(target, args).eval()  # on the meta device
    with FlopCounterMode(display=False) as counter:  # with autograd on: PiT's and CaiT's forward need it
        model(torch.empty(1, *report.input, device="meta"))
    theirs = counter.get_total_flops() // 2
    ours = sum(layer.macs for layer in report.layers if counted_by_torch(layer))
    return (f"✓ {theirs:,}", True) if ours == theirs else (f"✗ ours {ours:,}, FlopCounterMode {theirs:,}", False)


def params_cell(report: Any, imported: Any) -> tuple[str, bool]:
    params, reference = report.totals.params, imported.model_params or 0
    if params == reference:
        return f"✓ {params:,}", True
    if imported.unused and params < reference:
        roots = sorted({path.split(".")[0] for path in imported.unused})
        return f"✓ {params:,} ({reference - params:,} more in {', '.join(roots[:3])}, never run in eval)", True
    return f"✗ ours {params:,}, torch {reference:,}", False


def row(family: str, name: str, target: str, args: dict[str, Any], options: argparse.Namespace) -> tuple[str, str]:
    """The table row and its verdict: exact, refused, or wrong."""
    started = time.time()
    try:
        imported = read(target, args)
        report = analyze(spec_of(imported))
    except ConvauditError as error:
        seconds = time.time() - started
        return (f"| {family} | {name} | | ✗ {escape(str(error))} | not imported | not imported | not imported | "
                f"not imported | {seconds:.1f} |", "refused")
    except Exception as error:  # noqa: BLE001 - a crash is a row too: the table says so
        seconds = time.time() - started
        return (f"| {family} | {name} | | ✗ crash: {type(error).__name__}: {escape(str(error))[:300]} | | | | | "
                f"{seconds:.1f} |", "crash")
    seconds = time.time() - started
    size = "×".join(map(str, report.input))
    partial = " (partial)" if getattr(imported, "partial", False) else ""
    params, params_ok = params_cell(report, imported)
    try:
        macs, macs_ok = flop_counter_cell(target, args, report)
    except Exception as error:  # noqa: BLE001
        macs, macs_ok = f"FlopCounterMode failed: {escape(str(error))[:120]}", True
    fvcore = verify = "not run"
    if options.fvcore or options.verify:
        import torch

        from convaudit.pytorch.against import verify_against
        from scripts.torchvision_table import fvcore_of, verify_cell

        result = verify_against(report, target, args, torch.device("cpu"), repeats=0, imported=imported)
        fvcore = fvcore_of(result) if options.fvcore else "not run"
        verify = verify_cell(result) if options.verify else "not run"
    verdict = "exact" if params_ok and macs_ok and not partial else "wrong"
    return (f"| {family} | {name} | {size} | ✓{partial} | {params} | {macs} | {fvcore} | {verify} | "
            f"{seconds:.1f} |", verdict)


def kept(key: str, make: Callable[[], tuple[str, str]], keep: Path | None) -> tuple[str, str]:
    """A row, saved as DIR/KEY.row when --keep is given and reused on the next run (delete it to run again)."""
    if keep is None:
        return make()
    saved = keep / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}.row"
    if saved.exists():
        line, verdict = saved.read_text(encoding="utf-8").rstrip("\n").rsplit("\n", 1)
        return line, verdict
    line, verdict = make()
    keep.mkdir(parents=True, exist_ok=True)
    saved.write_text(f"{line}\n{verdict}\n", encoding="utf-8")
    return line, verdict


def seconds(rows: list[tuple[str, str]]) -> float:
    """The rows' own times (their last cell), so that a table made from saved rows still says what it cost."""
    total = 0.0
    for line, _ in rows:
        cell = line.rstrip(" |").rsplit("|", 1)[-1].strip()
        total += float(cell) if re.fullmatch(r"[0-9.]+", cell) else 0.0
    return total


def table(rows: list[tuple[str, str]], started: float) -> str:
    counts = {verdict: sum(1 for _, v in rows if v == verdict) for verdict in ("exact", "refused", "wrong", "crash")}
    total = len(rows)
    summary = (f"\n{counts['exact']} of {total} exact ({100 * counts['exact'] / max(total, 1):.0f}%): parameters and "
               f"MACs equal; {counts['refused']} refused with the operators named; {counts['wrong']} imported with a "
               f"number that differs; {counts['crash']} crashed. {seconds(rows):.0f} s in all (the rows' own times, "
               "one core, saved rows included).\n")
    return "\n".join(HEADER + [line for line, _ in rows]) + "\n" + summary


def write(text: str, start: str, end: str) -> None:
    readme = ROOT / "README.md"
    current = readme.read_text(encoding="utf-8")
    if start not in current or end not in current:
        sys.exit(f"README.md has no {start} … {end} markers")
    head, rest = current.split(start, 1)
    readme.write_text(head + start + "\n" + text + end + rest.split(end, 1)[1], encoding="utf-8")


def options(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fvcore", action="store_true", help="compare MACs with fvcore (runs each model on CPU)")
    parser.add_argument("--verify", action="store_true", help="run verify --against for each model")
    parser.add_argument("--only", nargs="*", help="these models (or families) only")
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="save each finished row in DIR and reuse it")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="import N models at a time, each in its own process (the rows keep their order)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the table to FILE")
    return parser
