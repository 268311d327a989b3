"""Bench AlexNet (227, batch 128) and VGG-16 (224, batch 32) at fp32 and bf16; write JSON results.

    python benchmarks/gpu_bench.py            # on a CUDA machine: writes benchmarks/results/<device>-<date>.json
    python benchmarks/gpu_bench.py --cpu      # a smoke run on the CPU at batch 2 (not a result to commit)

Each entry is `convaudit bench --format json` output; the file also records the device and the versions
of Python, torch, CUDA and cudnn. Run it twice to see how much the figures move between runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path

RUNS = [("alexnet", 128), ("vgg16", 32)]
DTYPES = ["fp32", "bf16"]
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="smoke run on the CPU at batch 2")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, help="output file (default: benchmarks/results/<device>-<date>.json)")
    args = parser.parse_args()

    import torch

    from convaudit.core.analysis import analyze
    from convaudit.pytorch.bench import bench_report, storage_dtype, versions
    from convaudit.pytorch.runtime import describe_device, pick_device
    from convaudit.render.bench import bench_dict
    from convaudit.spec.library import load

    device = pick_device(not args.cpu)
    entries = []
    for name, batch in RUNS:
        for dtype in DTYPES:
            batch_here = 2 if args.cpu else batch
            began = time.perf_counter()
            report = analyze(load(name), batch_here, storage_dtype(dtype))
            result = bench_report(report, device, dtype, args.warmup, args.repeats, peak="auto")
            elapsed = time.perf_counter() - began
            entry = bench_dict(result)
            entry["wall_s"] = elapsed
            entries.append(entry)
            model = entry["model"] or {}
            both = (model.get("forward_backward") or {}).get("median_s")
            print(f"{name:8} batch {batch_here:4} {dtype}: forward+backward "
                  f"{both * 1e3 if both else float('nan'):.2f} ms median; bench took {elapsed:.1f} s",
                  flush=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    label = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name() if device.type == "cuda" else "cpu")
    out = args.out or RESULTS / f"{label.strip('-').lower()}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": describe_device(device), "versions": versions(device),
                               "created": stamp, "runs": entries}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
