#!/usr/bin/env python3
"""Process start → first generated token, the way a cold serverless request sees it.

Runs `BITNET generate -m MODEL -p PROMPT -n 1 --temp 0 --no-display-prompt -t T` RUNS times and
reports, per run, the time from spawning the process to the first byte it writes to stdout (the
first generated token; the prompt is not echoed), plus the median. When the first token prints
nothing (a `bitnet dummy` model's tokens are mostly special ids), the first byte is the newline
written right after it, since -n 1 ends the generation there. The model file should already be in
the page cache (one run is made before measuring).

usage: scripts/ttft.py BITNET_BINARY MODEL [--runs 9] [--threads 2] [--prompt Hello] [--weights auto|memory|mapped] [--lm-head f16|q8|screened]
"""
import argparse, os, statistics, subprocess, time

parser = argparse.ArgumentParser()
parser.add_argument("binary")
parser.add_argument("model")
parser.add_argument("--runs", type=int, default=9)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--prompt", default="Hello")
parser.add_argument("--weights", default="auto")
parser.add_argument("--lm-head", default="f16")
args = parser.parse_args()

command = [args.binary, "generate", "-m", args.model, "-p", args.prompt, "-n", "1", "--temp", "0",
           "--no-display-prompt", "-t", str(args.threads), "--weights", args.weights, "--lm-head", args.lm_head]
subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # warm the page cache

times = []
for _ in range(args.runs):
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first = os.read(process.stdout.fileno(), 1)
    elapsed = time.perf_counter() - start
    process.stdout.read()
    if process.wait() != 0 or not first:
        raise SystemExit(f"run failed (exit {process.returncode})")
    times.append(elapsed)

print("runs (ms): " + " ".join(f"{t * 1000:.0f}" for t in sorted(times)))
print(f"median start → first token: {statistics.median(times) * 1000:.0f} ms")
