"""Import every torchvision model (classification, segmentation, video, optical flow, detection; the quantized ones
aside) and tabulate how exact convaudit is on it.

    python scripts/torchvision_table.py                 # Markdown table on stdout
    python scripts/torchvision_table.py --fvcore --verify --write   # all columns, into README.md

Per model: whether `convaudit import` reads it (and, if not, the one-line reason); parameters against
PyTorch's sum(p.numel()) (on the meta device: nothing allocated); with --fvcore, MACs against fvcore with
verify's documented conversion (layers fvcore reports unsupported left out of both sides); with --verify,
whether `verify --against torchvision:NAME` passes. Models with random weights; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convaudit.core.analysis import analyze  # noqa: E402
from convaudit.errors import ConvauditError  # noqa: E402
from convaudit.importers import read, spec_of  # noqa: E402
from convaudit.importers.targets import build, load_torchvision, torchvision_names  # noqa: E402

START, END = "<!-- torchvision-table -->", "<!-- /torchvision-table -->"
SKIPPED_BY_FVCORE = {"MultiheadAttention": "aten::_native_multi_head_attention", "aten.mean": "aten::mean"}


def left_out_note(ops: list[str]) -> str:
    """' (3 layers left out: fvcore cannot count aten::mean)': layers with MACs that fvcore reports unsupported."""
    if not ops:
        return ""
    plural = "s" if len(ops) != 1 else ""
    return f" ({len(ops)} layer{plural} left out: fvcore cannot count {', '.join(sorted(set(ops)))})"


def fvcore_row(name: str, report, imported) -> str:
    """fvcore alone (without --verify): its whole-model total against ours in its convention."""
    import torch
    from fvcore.nn import FlopCountAnalysis

    from convaudit.pytorch.verify import fvcore_expected, quiet

    model = build(f"torchvision:{name}", {}, meta=False).eval()
    with quiet(), torch.no_grad():
        analysis = FlopCountAnalysis(model, torch.randn(1, *report.input)).unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False).tracer_warnings("none")
        total, unsupported = int(analysis.total()), set(analysis.unsupported_ops())
    ops = {layer.name: layer.op for layer in imported.layers}
    left_out = {layer.name: SKIPPED_BY_FVCORE[ops[layer.name]] for layer in report.layers
                if SKIPPED_BY_FVCORE.get(ops.get(layer.name, "")) in unsupported and fvcore_expected(layer)}
    ours = sum(fvcore_expected(layer) for layer in report.layers if layer.name not in left_out)
    note = left_out_note(list(left_out.values()))
    return f"✓ {total:,}{note}" if ours == total else f"✗ ours {ours:,}, fvcore {total:,}{note}"


def fvcore_of(result) -> str:
    """The fvcore column from verify --against's own fvcore run (the same count, not run twice)."""
    from convaudit.pytorch.verify import MATCH, NOT_COUNTED

    cell = result.totals.cells.get("fvcore_macs") if result.totals else None
    if cell is None:
        return f"✗ {result.references.get('fvcore') or result.torch_error}"
    ops = [c.note.removeprefix("not counted by fvcore: ") for row in result.rows
           for c in (row.cells["fvcore_macs"],) if c.status == NOT_COUNTED and c.ours]
    note = left_out_note(ops)
    if cell.status == MATCH:
        return f"✓ {int(cell.theirs):,}{note}"
    return f"✗ ours {int(cell.ours):,}, fvcore {int(cell.theirs):,}{note}"


def verify_row(name: str, report, imported):
    import torch

    from convaudit.pytorch.against import verify_against

    return verify_against(report, f"torchvision:{name}", {}, torch.device("cpu"), repeats=0, imported=imported)


def number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def verify_cell(result) -> str:
    """✓, or which comparisons differ: per-layer columns with the first layers, then the totals."""
    from convaudit.pytorch.verify import MISMATCH, TORCH_OVERCOUNT

    if result.torch_error:
        return f"✗ {result.torch_error}".replace("|", "\\|")
    overcount = " (torch's grouped-conv backward over-count named)" if result.count(TORCH_OVERCOUNT) else ""
    if result.passed:
        return "✓" + overcount
    parts = []
    for column in ("shape", "params", "buffers", "fvcore_macs", "torch_forward", "torch_backward"):
        bad = [row.name for row in result.rows if row.cells.get(column) and row.cells[column].status == MISMATCH]
        if bad:
            parts.append(f"{column} in {len(bad)} layer{'s' if len(bad) != 1 else ''} ({', '.join(bad[:2])})")
    for column, cell in result.totals.cells.items():
        if cell.status == MISMATCH:
            parts.append(f"{column} total: ours {number(cell.ours)}, reference {number(cell.theirs)}")
    return "✗ " + "; ".join(parts)


def row(name: str, fvcore: bool, verify: bool) -> str:
    started = time.time()
    try:
        imported = read(f"torchvision:{name}")
        report = analyze(spec_of(imported))
    except ConvauditError as error:
        reason = re.sub(r"\s+", " ", str(error)).replace("|", "\\|")
        return f"| {name} | ✗ {reason} | not imported | not imported | not imported |"
    params = report.totals.params
    reference = imported.model_params or 0
    if params == reference:
        params_cell = f"✓ {params:,}"
    elif imported.unused:
        roots = sorted({path.split(".")[0] for path in imported.unused})  # aux1, aux2: the classifiers themselves
        params_cell = f"✓ {params:,} ({reference - params:,} more in {', '.join(roots)}, never run in eval)"
    else:
        params_cell = f"✗ ours {params:,}, torch {reference:,}"
    try:
        result = verify_row(name, report, imported) if verify else None
    except ConvauditError as error:  # verify's memory guard: more than this machine holds (S3D at 128 frames)
        reason = re.sub(r"\s+", " ", str(error)).replace("|", "\\|").split(";")[0]
        print(f"{name}: {time.time() - started:.0f} s", file=sys.stderr)
        return (f"| {name} | ✓ at {'×'.join(map(str, report.input))} | {params_cell} | not run: {reason} | "
                f"not run: {reason} |")
    if fvcore:
        fvcore_cell = fvcore_of(result) if result is not None else fvcore_row(name, report, imported)
    else:
        fvcore_cell = "not run"
    verify_text = verify_cell(result) if result is not None else "not run"
    size = "×".join(map(str, report.input))
    print(f"{name}: {time.time() - started:.0f} s", file=sys.stderr)
    return f"| {name} | ✓ at {size} | {params_cell} | {fvcore_cell} | {verify_text} |"


def kept_row(name: str, args: argparse.Namespace) -> str:
    if args.keep is None:
        return row(name, args.fvcore, args.verify)
    saved = args.keep / f"{name}.row"
    if saved.exists():
        return saved.read_text(encoding="utf-8").strip()
    line = row(name, args.fvcore, args.verify)
    args.keep.mkdir(parents=True, exist_ok=True)
    saved.write_text(line + "\n", encoding="utf-8")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fvcore", action="store_true", help="compare MACs with fvcore (runs each model on CPU)")
    parser.add_argument("--verify", action="store_true", help="run verify --against for each model")
    parser.add_argument("--only", nargs="*", help="these models only")
    parser.add_argument("--write", action="store_true", help=f"replace the table between {START} and {END}")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="save each finished row as DIR/NAME.row and reuse it on the next run (delete a file to "
                             "run that model again): the whole table takes long on CPU, so it can be run in parts")
    args = parser.parse_args()
    load_torchvision()
    names = args.only or torchvision_names()
    lines = ["| model | imports | params = sum(p.numel()) | MACs vs fvcore (1 per MAC) | verify --against |",
             "|---|---|---|---|---|"]
    lines += [kept_row(name, args) for name in names]
    table = "\n".join(lines) + "\n"
    if not args.write:
        print(table, end="")
        return
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        sys.exit(f"README.md has no {START} … {END} markers")
    head, rest = text.split(START, 1)
    readme.write_text(head + START + "\n" + table + END + rest.split(END, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    main()
