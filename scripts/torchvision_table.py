"""Import every torchvision model (classification, segmentation, video, optical flow, detection; the quantized ones
aside) and tabulate how exact convaudit is on it.

    python scripts/torchvision_table.py                 # Markdown table on stdout
    python scripts/torchvision_table.py --fvcore --verify --write   # all columns, into README.md

Per model: whether `convaudit import` reads it (and, if not, the one-line reason); parameters against
PyTorch's sum(p.numel()) (on the meta device: nothing allocated); with --fvcore, MACs against fvcore with
verify's documented conversion (layers fvcore reports unsupported left out of both sides); with --verify,
whether `verify --against torchvision:NAME` passes. Models with random weights; nothing is downloaded.

A model whose trace stops at a data-dependent operator (detection: proposals, NMS) is imported with --partial:
the row says where it stopped and what was not reached; its parameters are checked against sum(p.numel()) of the
modules that ran, and its MACs against FlopCounterMode over the same forward on the meta device, which fails at
the same operator: what it counted until then is what ran before the stop. verify runs the whole model, so not.

    python scripts/torchvision_table.py --only fasterrcnn_resnet50_fpn retinanet_resnet50_fpn   # some rows
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convaudit.core.analysis import analyze, not_counted  # noqa: E402
from convaudit.core.model import in_module  # noqa: E402
from convaudit.errors import ConvauditError  # noqa: E402
from convaudit.importers import read, spec_of  # noqa: E402
from convaudit.importers.targets import build, load_torchvision, torchvision_names  # noqa: E402
from convaudit.importers.trace import TraceRefused  # noqa: E402

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


def flop_counter_until_the_stop(name: str, input_shape: tuple[int, ...], op: str) -> int | str:
    """FlopCounterMode's multiply-adds (FLOPs / 2) over the model's forward on the meta device, which fails at the
    data-dependent operator where our trace stopped: what ran before it. A text where it fails elsewhere."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build(f"torchvision:{name}", {}, meta=True).eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model(torch.empty((1, *input_shape), device="meta"))
    except Exception as error:  # noqa: BLE001 - the data-dependent operator has no meta kernel: it must fail
        failed = str(error)
        packet = op.split(".")[1]
        if packet not in failed and not (packet == "index" and "nonzero" in failed):  # a mask index runs nonzero
            return f"FlopCounterMode's run failed elsewhere: {failed.splitlines()[0][:120]}"
        return counter.get_total_flops() // 2
    return "FlopCounterMode's run did not stop"


def partial_row(name: str, started: float) -> str:
    """A model traced up to a data-dependent operator (import --partial)."""
    imported = read(f"torchvision:{name}", partial=True)
    report = analyze(spec_of(imported))
    untraced = imported.untraced
    model = build(f"torchvision:{name}", {}, meta=True)
    unreached = sum(p.numel() for path in untraced.unreached for p in model.get_submodule(path).parameters())
    params, reference = report.totals.params, imported.model_params or 0
    not_reached = f"; {', '.join(untraced.unreached)} not reached" if untraced.unreached else ""
    uncounted = len(not_counted(report))
    looped = f"; {uncounted} layers marked ? (not counted)" if uncounted else ""
    size = "×".join(map(str, report.input))
    imports = f"✓ partial at {size}: stops at {untraced.op} {in_module(untraced.module)}{not_reached}{looped}"
    if params == reference - unreached:
        more = f" ({unreached:,} more in {', '.join(untraced.unreached)})" if unreached else ""
        params_cell = f"✓ {params:,} of the modules that ran{more}"
    else:
        params_cell = f"✗ ours {params:,}, torch {reference - unreached:,} in the modules that ran"
    theirs = flop_counter_until_the_stop(name, report.input, untraced.op)
    if isinstance(theirs, str):
        macs_cell = f"✗ {theirs}"
    elif theirs == report.totals.macs:
        macs_cell = f"✓ {theirs:,} = FlopCounterMode up to the stop"
    else:
        macs_cell = f"✗ ours {report.totals.macs:,}, FlopCounterMode up to the stop {theirs:,}"
    print(f"{name}: {time.time() - started:.0f} s", file=sys.stderr)
    return f"| {name} | {imports} | {params_cell} | {macs_cell} | not run: partial (verify runs the whole model) |"


def row(name: str, fvcore: bool, verify: bool) -> str:
    started = time.time()
    try:
        imported = read(f"torchvision:{name}")
        report = analyze(spec_of(imported))
    except TraceRefused as error:
        if all(problem.partial_ok for problem in error.problems):
            return partial_row(name, started)
        reason = re.sub(r"\s+", " ", str(error)).replace("|", "\\|")
        return f"| {name} | ✗ {reason} | not imported | not imported | not imported |"
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
