"""What a call through the Python package costs beyond the Rust library's own.

Usage (after `make python`):

    .venv-python/bin/python bench/python_overhead.py [--calls 200] [--json]

Each call's `timings.total_ms` is the Rust library's own measure of the call
(`Model::generate`, adapter and engine included); the Python wall time around
`model.generate(...)` adds the binding: converting messages and parameters,
the worker thread, waiting with the GIL released, building the result. The
difference, per call, is the overhead, measured in the same run on the same
calls. Two models: the mock engine (a call of well under a millisecond, where
the overhead shows most) and SmolLM2 (16 greedy tokens: what it is worth on a
real call). Medians and 90th percentiles.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import lmhost

REPO = Path(__file__).resolve().parents[1]
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
]


def measure(model: lmhost.Model, calls: int, **params: object) -> dict[str, float]:
    model.generate(MESSAGES, **params)  # warm: adapter compiled, engine loaded
    walls, rusts = [], []
    for _ in range(calls):
        started = time.perf_counter()
        g = model.generate(MESSAGES, **params)
        walls.append((time.perf_counter() - started) * 1000)
        rusts.append(g.timings.total_ms)
    overheads = sorted(w - r for w, r in zip(walls, rusts))
    return {
        "calls": calls,
        "rust_ms_median": statistics.median(rusts),
        "python_ms_median": statistics.median(walls),
        "overhead_us_median": statistics.median(overheads) * 1000,
        "overhead_us_p90": overheads[int(0.9 * (len(overheads) - 1))] * 1000,
        "overhead_share_median": statistics.median((w - r) / w for w, r in zip(walls, rusts)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    host = lmhost.Host(models_dir=REPO / "models")
    mock = host.load({"model_name": "bench-mock", "backend": "mock", "reply": "Paris."})
    smol = host.load("SmolLM2-135M-Instruct")
    report = {
        "mock": measure(mock, args.calls),
        "SmolLM2-135M-Instruct": measure(smol, max(args.calls // 10, 5), max_tokens=16, temperature=0),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print("| model | calls | Rust library ms (median) | through Python ms (median) | overhead µs median / p90 | share |")
    print("|---|---|---|---|---|---|")
    for name, r in report.items():
        print(
            f"| {name} | {r['calls']} | {r['rust_ms_median']:.3f} | {r['python_ms_median']:.3f} | "
            f"{r['overhead_us_median']:.0f} / {r['overhead_us_p90']:.0f} | {r['overhead_share_median']:.1%} |"
        )


if __name__ == "__main__":
    main()
