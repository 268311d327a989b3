"""The README's timm table: one architecture of every timm family (the first, by name), or all of them (--all).

    python scripts/timm_table.py [--all] [--fvcore] [--verify] [--only NAME...] [--keep DIR] [--jobs N]
                                 [--write | --output FILE]

Every model is built with pretrained=False (nothing is downloaded) and imported at its own input size
(pretrained_cfg["input_size"]). See scripts/model_table.py for the columns. The whole zoo:
`--all --jobs 2 --keep /tmp/timm-rows --output benchmarks/results/timm_all.md` (the wall time is printed last).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.model_table import kept, options, table, write  # noqa: E402

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


def one(family: str, name: str, args: Any) -> tuple[str, str]:
    """One model's row (saved under --keep): a function of its own so that worker processes can run it."""
    from scripts.model_table import row

    return kept(name, lambda: row(family, name, "timm:create_model", {"model_name": name, "pretrained": False},
                                  args), args.keep)


def main() -> None:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every timm architecture, not one per family")
    args = parser.parse_args()
    started = time.time()
    chosen = [(f, m) for f, m in models(args.all) if not args.only or f in args.only or m in args.only]
    rows = []
    if args.jobs > 1:  # spawned workers (never forked after torch started its threads); rows in the given order
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for made in pool.map(one, *zip(*chosen, strict=True), [args] * len(chosen)):
                rows.append(made)
                print(made[0], file=sys.stderr, flush=True)
    else:
        for family, name in chosen:
            rows.append(one(family, name, args))
            print(rows[-1][0], file=sys.stderr, flush=True)
    text = table(rows, started)
    wall = f"{len(rows)} models in {time.time() - started:.0f} s of wall time with {args.jobs} process(es).\n"
    if args.write:
        write(text, START, END)
    elif args.output:
        args.output.write_text(text + "\n" + wall, encoding="utf-8")
    else:
        print(text, end="")
    print(wall, end="", file=sys.stderr)


if __name__ == "__main__":
    main()
