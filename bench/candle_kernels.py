#!/usr/bin/env python3
"""The candle engine's integer kernels against each other (AVX-512 VNNI on 256 bits, AVX2,
scalar), through lmhost: the request of bench/vs_llama_bench.py (a ~225-token
prompt, 120 generated tokens) on SmolLM2-135M Q4_1 as a `huggingface_local`
entry, one `lmhost run --json` process per measurement with
`LMHOST_CANDLE_SIMD=<kernels>`, kernels interleaved in every round (in turn
forward and backward), medians. Ratios are to the first kernel set given.

    bench/candle_kernels.py --rounds 7 --threads 2
    bench/candle_kernels.py --rounds 7 --threads 1 --kernels vnni,avx2
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vs_llama_bench import ROOT, compare, lmhost_run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmhost", default=os.path.expanduser("~/.cache/lmhost/target/release/lmhost"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--kernels", default="vnni,avx2,scalar", help="comma-separated LMHOST_CANDLE_SIMD values")
    args = ap.parse_args()
    kernels = args.kernels.split(",")
    spec = {"model_name": "SmolLM2-135M-Instruct-candle", "backend": "huggingface_local",
            "model_path": args.model, "premade_chat_template": True}
    print(f"threads {args.threads}, {args.rounds} rounds")
    compare(kernels, lambda k: lmhost_run(args.lmhost, args.gen, args.threads, {"LMHOST_CANDLE_SIMD": k}, spec)[2:],
            args.rounds, "kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
