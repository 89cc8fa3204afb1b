#!/usr/bin/env python3
"""A new request's time to first token while other generations decode, against an idle server.

Against a running server (`bitnet serve --parallel N+1` or more), measures with streaming `/v1/completions`:
  1. idle: RUNS requests one after another, each timed from sending to its first streamed chunk;
  2. loaded: N background generations stream long completions; once all of them are decoding,
     RUNS more requests join one after another and are timed the same way.
It prints both medians, the median gap between the background streams' chunks before any request
joins (one decode step of the N streams), and the ratio of the loaded median to "1.5 x idle + one step".
Use a model whose tokens decode to text (a `bitnet dummy --vocab-from` model, or a real one):
a chunk is sent per text delta.

usage: scripts/join-ttft.py URL [--streams 4] [--runs 9] [--prompt-words 48] [--api-key KEY]
"""
import argparse, http.client, json, statistics, threading, time, urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--streams", type=int, default=4)
parser.add_argument("--runs", type=int, default=9)
parser.add_argument("--prompt-words", type=int, default=48)
parser.add_argument("--api-key")
args = parser.parse_args()
target = urllib.parse.urlparse(args.url)
words = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge".split()


def prompt(seed, count):
    # Starts with its own number, so no two prompts share a KV block (prefix sharing would hide the prompt's cost).
    return f"{seed}: " + " ".join(words[(seed * 5 + i * 3) % len(words)] for i in range(count))


def stream(body, on_chunk):
    """Posts a streaming completion; calls on_chunk(time) per data chunk; returns the chunk count."""
    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=600)
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = "Bearer " + args.api_key
    conn.request("POST", "/v1/completions", json.dumps(body), headers)
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"HTTP {response.status}: {response.read()[:300]!r}")
    chunks = 0
    for line in response:
        if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
            chunks += 1
            if on_chunk(time.perf_counter()) is False:
                break
    conn.close()
    return chunks


def time_to_first_chunk(seed):
    start = time.perf_counter()
    first = []
    stream({"prompt": prompt(seed, args.prompt_words), "max_tokens": 2, "temperature": 0, "stream": True},
           lambda t: first.append(t) or False)
    return first[0] - start


health = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
health.request("GET", "/health")
parallel = json.loads(health.getresponse().read()).get("batching", {}).get("parallel", 1)
if parallel < args.streams + 1:
    raise SystemExit(f"the server decodes {parallel} generations together: a request joining {args.streams} streams would "
                     f"wait in the queue; start it with --parallel {args.streams + 1} or more")
time_to_first_chunk(0)  # warm-up
idle = [time_to_first_chunk(100 + i) for i in range(args.runs)]

gaps, started, stop = [], threading.Semaphore(0), threading.Event()
lock = threading.Lock()


def background(seed):
    last = [None]

    def chunk(t):
        if last[0] is None:
            started.release()
        elif not stop.is_set():
            with lock:
                gaps.append(t - last[0])
        last[0] = t
        return not stop.is_set()
    stream({"prompt": prompt(seed, 16), "max_tokens": 3000, "temperature": 0, "stream": True}, chunk)


threads = [threading.Thread(target=background, args=(1000 + i,), daemon=True) for i in range(args.streams)]
for t in threads:
    t.start()
for _ in threads:
    started.acquire()
with lock:
    gaps.clear()
time.sleep(2.0)
with lock:
    step_gaps = list(gaps)  # decode steps of the N streams alone: the "one step" of the bound
loaded = [time_to_first_chunk(200 + i) for i in range(args.runs)]
stop.set()
for t in threads:
    t.join()

idle_ms, loaded_ms = statistics.median(idle) * 1000, statistics.median(loaded) * 1000
step_ms = statistics.median(step_gaps) * 1000 if step_gaps else float("nan")
bound = 1.5 * idle_ms + step_ms
print(f"idle TTFT p50 {idle_ms:.1f} ms (runs: {', '.join(f'{x * 1000:.0f}' for x in idle)})")
print(f"TTFT p50 beside {args.streams} decoding streams {loaded_ms:.1f} ms (runs: {', '.join(f'{x * 1000:.0f}' for x in loaded)})")
print(f"decode step of the {args.streams} streams alone p50 {step_ms:.1f} ms ({len(step_gaps)} gaps)")
print(f"loaded / (1.5 x idle + one step) = {loaded_ms / bound:.2f}")
