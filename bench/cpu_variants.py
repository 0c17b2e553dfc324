#!/usr/bin/env python3
"""llama.cpp's CPU variants against each other, through lmhost: the same
request as bench/vs_llama_bench.py (a ~225-token prompt, 120 generated tokens,
SmolLM2-135M Q4_1), one `lmhost run --json` process per measurement with
`LMHOST_LLAMA_CPU=<variant>`, variants interleaved in every round (in turn
forward and backward), medians.
The first column is what lmhost picks by itself on this CPU (`lmhost list
devices`); every other variant is shown as a ratio to it.

    bench/cpu_variants.py --rounds 5 --threads 2
    bench/cpu_variants.py --rounds 5 --threads 2 --variants zen4,icelake,skylakex,haswell,x64
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vs_llama_bench import ROOT, compare, lmhost_run  # noqa: E402


def usable_variants(binary):
    rows = json.loads(subprocess.run([binary, "list", "devices", "--json"], check=True, capture_output=True,
                                     text=True, cwd=ROOT).stdout)
    cpu = next(r for r in rows if r.get("kind") == "cpu" and "variant" in r)
    return cpu["variant"], [v["variant"] for v in cpu["variants"] if v["usable"]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmhost", default=os.path.expanduser("~/.cache/lmhost/target/release/lmhost"))
    ap.add_argument("--threads", type=int, default=2, help="0: lmhost's default")
    ap.add_argument("--gen", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", help="comma-separated (default: every usable one)")
    args = ap.parse_args()
    chosen, usable = usable_variants(args.lmhost)
    variants = args.variants.split(",") if args.variants else usable
    variants = [chosen] + [v for v in variants if v != chosen]
    print(f"threads {args.threads or 'default'}, {args.rounds} rounds, chosen here: {chosen}")
    compare(variants, lambda v: lmhost_run(args.lmhost, args.gen, args.threads, {"LMHOST_LLAMA_CPU": v})[2:],
            args.rounds, "variant")
    return 0


if __name__ == "__main__":
    sys.exit(main())
