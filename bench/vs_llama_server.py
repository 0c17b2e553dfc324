#!/usr/bin/env python3
"""`lmhost serve` vs llama.cpp's `llama-server`: the same GGUF, context per
slot, slots and threads; streamed chat completions at concurrency 1, 4 and 8,
servers measured in turn (llama-server, lmhost, llama-server, ...), medians.
Reports output tokens/s, p50/p99 time to first token and resident memory after
the runs (1 s after the last answer).

    bench/vs_llama_server.py --llama-server "$(bench/llama-bench.sh avx2)/llama-server" --rounds 3

Both servers get `slots` sequences of `--ctx` tokens each (llama-server: `-c
ctx*slots -np slots`; lmhost: `n_ctx`, `parallel`, `--max-concurrency`).
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = "Write a short story about a lighthouse keeper and a storm, in about ten sentences."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port, proc, seconds=120):
    started = time.time()
    while time.time() - started < seconds:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not become healthy")


def one_request(port, model, max_tokens, extra=None):
    """Streamed chat completion: (seconds to first content, completion tokens)."""
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
            **(extra or {}),
        }
    )
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"{r.status}: {r.read()[:300]!r}")
    ttft, tokens, chunks = None, None, 0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        event = json.loads(data)
        for choice in event.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - started
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
    return ttft or 0.0, tokens if tokens is not None else chunks


def load(port, model, concurrency, requests, max_tokens, extra=None):
    results, lock = [], threading.Lock()
    todo = list(range(requests))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            r = one_request(port, model, max_tokens, extra)
            with lock:
                results.append(r)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return sum(t for _, t in results) / wall, [f for f, _ in results]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--lmhost", default=os.path.expanduser("~/.cache/lmhost/target/release/lmhost"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=1024, help="context per slot")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--prompt-cache", action="store_true", help="let llama-server reuse the previous prompt's KV cells")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    tmp = tempfile.mkdtemp(prefix="vs-llama-server-")
    registry = os.path.join(tmp, "registry.json")
    with open(registry, "w") as f:
        json.dump(
            [
                {
                    "model_name": "bench-model",
                    "backend": "llamacpp",
                    "model_path": args.model,
                    "n_ctx": args.ctx,
                    "parallel": args.slots,
                    "threads": args.threads,
                }
            ],
            f,
        )
    lp, hp = free_port(), free_port()
    servers = {
        "llama-server": subprocess.Popen(
            [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(lp),
             "-c", str(args.ctx * args.slots), "-np", str(args.slots), "-t", str(args.threads), "--jinja"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
        "lmhost": subprocess.Popen(
            [args.lmhost, "--registry", registry, "serve", "-m", "bench-model", "--port", str(hp),
             "--max-concurrency", str(args.slots)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, "LMHOST_HOME": tmp},
        ),
    }
    ports = {"llama-server": lp, "lmhost": hp}
    model = {"llama-server": "bench-model", "lmhost": "bench-model"}
    # lmhost keeps no prompt cache: llama-server must not reuse the previous
    # request's KV cells either, or it evaluates one token where lmhost
    # evaluates the prompt (--prompt-cache keeps it on, to show what it is worth).
    extra = {"llama-server": {"cache_prompt": args.prompt_cache}, "lmhost": None}
    try:
        for name, proc in servers.items():
            wait_healthy(ports[name], proc)
            one_request(ports[name], model[name], args.max_tokens)
        tps = {(n, c): [] for n in servers for c in levels}
        ttft = {(n, c): [] for n in servers for c in levels}
        for _ in range(args.rounds):
            for c in levels:
                for name in servers:
                    t, firsts = load(ports[name], model[name], c, max(8, 2 * c), args.max_tokens, extra[name])
                    tps[(name, c)].append(t)
                    ttft[(name, c)].extend(firsts)
        # At rest: lmhost hands free heap back to the OS after 200 ms idle.
        time.sleep(1)
        rss = {name: rss_mib(proc.pid) for name, proc in servers.items()}
    finally:
        for proc in servers.values():
            proc.terminate()
            proc.wait()
    med = statistics.median
    print(f"threads {args.threads}, slots {args.slots}, context {args.ctx} per slot, {args.max_tokens} tokens per answer, "
          f"{args.rounds} rounds, llama-server prompt cache {'on' if args.prompt_cache else 'off'}")
    print("| concurrency | llama-server out t/s | lmhost out t/s | ÷ | TTFT p50 / p99 ms llama-server | lmhost | ÷ p50 |")
    print("|---|---|---|---|---|---|---|")
    for c in levels:
        a, b = med(tps[("llama-server", c)]), med(tps[("lmhost", c)])
        fa, fb = ttft[("llama-server", c)], ttft[("lmhost", c)]
        print(
            f"| {c} | {a:.1f} | {b:.1f} | {b / a:.3f} | {pct(fa, 50) * 1000:.0f} / {pct(fa, 99) * 1000:.0f} | "
            f"{pct(fb, 50) * 1000:.0f} / {pct(fb, 99) * 1000:.0f} | {pct(fb, 50) / pct(fa, 50):.2f} |"
        )
    print(f"resident memory after the runs: llama-server {rss['llama-server']:.0f} MiB, lmhost {rss['lmhost']:.0f} MiB "
          f"({rss['lmhost'] / rss['llama-server']:.2f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
