"""The README's timm table: one architecture of every timm family (the first, by name), or all of them (--all).

    python scripts/timm_table.py [--all] [--fvcore] [--verify] [--only NAME...] [--keep DIR] [--write]

Every model is built with pretrained=False (nothing is downloaded) and imported at its own input size
(pretrained_cfg["input_size"]). See scripts/model_table.py for the columns.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.model_table import kept, options, row, table, write  # noqa: E402

START, END = "<!-- timm-table -->", "<!-- /timm-table -->"


def models(every: bool) -> list[tuple[str, str]]:
    """(family, model): the first model of each family, or every model."""
    from convaudit.importers.targets import prepare_torchvision

    prepare_torchvision()  # timm imports torchvision, which fails next to CPU torch without this
    import timm

    found = []
    for family in timm.list_modules():
        names = sorted(timm.list_models(module=family))
        found += [(family, name) for name in (names if every else names[:1])]
    return found


def main() -> None:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every timm architecture, not one per family")
    args = parser.parse_args()
    started = time.time()
    chosen = [(f, m) for f, m in models(args.all) if not args.only or f in args.only or m in args.only]
    rows = []
    for family, name in chosen:
        rows.append(kept(name, lambda f=family, n=name: row(f, n, "timm:create_model",
                                                           {"model_name": n, "pretrained": False}, args), args.keep))
        print(rows[-1][0], file=sys.stderr, flush=True)
    text = table(rows, started)
    if args.write:
        write(text, START, END)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
