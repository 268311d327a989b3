"""Import every torchvision classification model and tabulate how exact convaudit is on it.

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
from convaudit.importers.targets import build, load_torchvision  # noqa: E402

START, END = "<!-- torchvision-table -->", "<!-- /torchvision-table -->"
SKIPPED_BY_FVCORE = {"MultiheadAttention": "aten::_native_multi_head_attention", "aten.mean": "aten::mean"}


def fvcore_row(name: str, report, imported) -> str:
    import torch
    from fvcore.nn import FlopCountAnalysis

    from convaudit.pytorch.verify import fvcore_expected, quiet

    model = build(f"torchvision:{name}", {}, meta=False).eval()
    with quiet(), torch.no_grad():
        analysis = FlopCountAnalysis(model, torch.randn(1, *report.input)).unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False).tracer_warnings("none")
        total, unsupported = int(analysis.total()), set(analysis.unsupported_ops())
    ops = {layer.name: layer.op for layer in imported.layers}
    left_out = {layer.name for layer in report.layers
                if SKIPPED_BY_FVCORE.get(ops.get(layer.name, "")) in unsupported}
    ours = sum(fvcore_expected(layer) for layer in report.layers if layer.name not in left_out)
    note = f" ({len(left_out)} layers fvcore cannot count left out)" if left_out else ""
    return f"✓ {total:,}{note}" if ours == total else f"✗ ours {ours:,}, fvcore {total:,}{note}"


def verify_row(name: str, report) -> str:
    import torch

    from convaudit.pytorch.against import verify_against

    result = verify_against(report, f"torchvision:{name}", {}, torch.device("cpu"), repeats=0)
    if result.passed:
        return "✓"
    bad = [row.name for row in result.rows if any(c.status == "mismatch" for c in row.cells.values())]
    return f"✗ {len(bad)} layers differ ({', '.join(bad[:2])})" if bad else "✗ totals differ"


def row(name: str, fvcore: bool, verify: bool) -> str:
    started = time.time()
    try:
        imported = read(f"torchvision:{name}")
        report = analyze(spec_of(imported))
    except ConvauditError as error:
        reason = re.sub(r"\s+", " ", str(error)).replace("|", "\\|")
        return f"| {name} | ✗ {reason} | | | |"
    params = report.totals.params
    reference = imported.model_params or 0
    if params == reference:
        params_cell = f"✓ {params:,}"
    elif imported.unused:
        params_cell = (f"✓ {params:,} ({reference - params:,} more in {', '.join(imported.unused[:2])}, never "
                       "run in eval)")
    else:
        params_cell = f"✗ ours {params:,}, torch {reference:,}"
    fvcore_cell = fvcore_row(name, report, imported) if fvcore else "not run"
    verify_cell = verify_row(name, report) if verify else "not run"
    size = "×".join(map(str, report.input))
    print(f"{name}: {time.time() - started:.0f} s", file=sys.stderr)
    return f"| {name} | ✓ at {size} | {params_cell} | {fvcore_cell} | {verify_cell} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fvcore", action="store_true", help="compare MACs with fvcore (runs each model on CPU)")
    parser.add_argument("--verify", action="store_true", help="run verify --against for each model")
    parser.add_argument("--only", nargs="*", help="these models only")
    parser.add_argument("--write", action="store_true", help=f"replace the table between {START} and {END}")
    args = parser.parse_args()
    torchvision = load_torchvision()
    names = args.only or sorted(torchvision.models.list_models(module=torchvision.models))
    lines = ["| model | imports | params = sum(p.numel()) | MACs vs fvcore (1 per MAC) | verify --against |",
             "|---|---|---|---|---|"]
    lines += [row(name, args.fvcore, args.verify) for name in names]
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
