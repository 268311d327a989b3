"""Where a cold trace spends its time: milliseconds inside meta kernels, per ATen overload, over several models.

    python benchmarks/trace_profile.py                      # the torchvision and timm models below
    python benchmarks/trace_profile.py --models resnet50 timm:levit_128 --top 30
    python benchmarks/trace_profile.py --no-fastmeta        # the same with importers.fastmeta's rules off

Each model is traced cold (`metacache._ANSWERS` cleared first: every kernel runs once per distinct call), best of
--repeats. Every call to MetaCache.run is timed and added to its overload's row, with how it was answered:
remembered, by a fastmeta rule, by the kernel learning the rule's dtypes, or by the kernel alone. The table lists
the overloads by total time over all models, with the share of the traces' total time, so the operators worth
an exact rule are the ones at the top. No thresholds: for reading.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TORCHVISION = ["resnet50", "mobilenet_v3_small", "efficientnet_b0", "vit_b_16", "convnext_tiny", "regnet_y_400mf",
               "swin_t"]
TIMM = ["timm:convnext_nano", "timm:efficientformer_l1", "timm:levit_128", "timm:deit_tiny_patch16_224",
        "timm:mobilevit_s", "timm:coatnet_0_rw_224"]


def build(name: str) -> tuple[Any, tuple[int, ...]]:
    import torch

    from convaudit.importers.targets import build as build_target
    from convaudit.importers.targets import prepare_torchvision

    if name.startswith("timm:"):
        prepare_torchvision()
        import timm

        with torch.device("meta"):
            model = timm.create_model(name[5:], pretrained=False).eval()
        return model, tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
    from convaudit.importers.defaults import default_input_shape

    model = build_target(f"torchvision:{name}", {}).eval()
    return model, tuple(default_input_shape(model, f"torchvision:{name}") or (3, 224, 224))


def profile(names: list[str], repeats: int, fastmeta: bool) -> None:
    from convaudit.importers import metacache
    from convaudit.importers.trace import trace

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    totals: dict[str, float] = {}
    original = metacache.MetaCache.run

    def timed_run(self: Any, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        hits, answered, known = self.hits, self.fast.answered if self.fast else 0, len(self.answers)
        began = time.perf_counter()
        out = original(self, func, args, kwargs)
        took = time.perf_counter() - began
        if self.hits > hits:
            outcome = "hit"
        elif self.fast and self.fast.answered > answered:
            outcome = "rule"
        else:  # the kernel ran: its answer (and, where a rule learnt them, its dtypes) now stored
            outcome = "learnt" if len(self.answers) > known + 1 else "kernel"
        self.profile.append((str(func), outcome, took))
        return out

    metacache.MetaCache.run = timed_run  # type: ignore[method-assign]
    if not fastmeta:
        metacache.FAST = False
    try:
        for name in names:
            model, shape = build(name)
            best = None
            for _ in range(repeats):
                metacache._ANSWERS.clear()
                metacache.MetaCache.profile = []  # type: ignore[attr-defined]
                began = time.perf_counter()
                trace(model, shape)
                took = time.perf_counter() - began
                if best is None or took < best[0]:
                    best = (took, list(metacache.MetaCache.profile))  # type: ignore[attr-defined]
            assert best is not None
            totals[name] = best[0]
            inside = sum(t for _, _, t in best[1])
            print(f"{name:32} {shape} trace {best[0] * 1000:7.0f} ms, in cacheable kernels {inside * 1000:6.0f} ms "
                  f"({100 * inside / best[0]:.0f}%), {len(best[1])} calls", flush=True)
            for op, outcome, t in best[1]:
                spent[op] += t
                calls[op] += 1
                outcomes[op][outcome] += 1
    finally:
        metacache.MetaCache.run = original  # type: ignore[method-assign]
        metacache.FAST = True
    everything = sum(totals.values())
    print(f"\nall traces {everything * 1000:.0f} ms; overloads by time in MetaCache.run. Calls: remembered (hit), "
          "answered by a fastmeta rule, kernel run and dtypes learnt, kernel run (no rule, or the rule declined)")
    for op, t in sorted(spent.items(), key=lambda kv: -kv[1])[:TOP]:
        seen = outcomes[op]
        print(f"{t * 1000:8.1f} ms {100 * t / everything:5.1f}%  {calls[op]:5d} calls: {seen['hit']:5d} hit "
              f"{seen['rule']:5d} rule {seen['learnt']:4d} learnt {seen['kernel']:5d} kernel  {op}")


TOP = 40


def main() -> None:
    global TOP
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=TORCHVISION + TIMM)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--top", type=int, default=TOP)
    parser.add_argument("--no-fastmeta", action="store_true")
    options = parser.parse_args()
    TOP = options.top
    profile(options.models, options.repeats, not options.no_fastmeta)


if __name__ == "__main__":
    main()
