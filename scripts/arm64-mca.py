#!/usr/bin/env python3
"""Static throughput of the ARM64 kernels' inner loops on Graviton's cores, without Graviton.

For each kernel, takes the function from a linux-arm64 Native AOT `bitnet` binary (symbols from the
`bitnet.dbg` beside it), finds its innermost loop with the most multiply-accumulate instructions,
and runs llvm-mca on that loop body for Neoverse N1 (Graviton 2), V1 (Graviton 3) and V2 (Graviton 4).
Prints cycles per iteration and per byte of weights. An estimate from LLVM's scheduling models
(steady state, data in L1): it shows which loop is bound by its instructions and by how much, not
what a Graviton measures.

Needs llvm-objdump, llvm-nm (any LLVM) and an llvm-mca with the Neoverse models (LLVM 16 or later:
`apt-get install llvm-19`; LLVM 14's llvm-mca accepts the names but schedules them as Cortex-A57).
usage: scripts/arm64-mca.py [BINARY]   (default: artifacts/aot/linux-arm64/bitnet, which
       scripts/test-aot.sh publishes)
"""
import os, re, shutil, subprocess, sys

# (symbol suffix, what one loop iteration covers, bytes of weights it reads)
KERNELS = [
    ("I2sKernels__DotProdRow", "I2_S decode row (sdot): 128 codes", 32),
    ("I2sKernels__DotProdRowTokens8", "I2_S prefill, 8 tokens (sdot): 128 codes", 32),
    ("F16__DotRowsVector128", "F16 LM head row: 16 halves", 32),
    ("Q8ExactDots__RowsAdvSimd", "int8 LM head row (q8, screened): 16 weights", 16),
]
CPUS = [("neoverse-n1", "Graviton 2"), ("neoverse-v1", "Graviton 3"), ("neoverse-v2", "Graviton 4")]
MULTIPLY_ACCUMULATE = re.compile(r"^(sdot|fmla|smlal2?|sadalp|smull2?)\s")


def tool(names):
    for name in names:
        path = shutil.which(name) or (name if os.path.exists(name) else None)
        if path:
            return path
    sys.exit(f"none of {names} found")


def innermost_loop(objdump, nm, binary, suffix):
    symbols = subprocess.run([nm, "-n", binary + ".dbg"], capture_output=True, text=True, check=True).stdout.splitlines()
    text = [line.split() for line in symbols if re.match(r"^[0-9a-f]+ [tT] ", line)]
    index = next((i for i, s in enumerate(text) if s[2].endswith(suffix)), None)
    if index is None:
        return None
    start, end = int(text[index][0], 16), int(text[index + 1][0], 16)
    listing = subprocess.run([objdump, "-d", "--mattr=+dotprod", "--no-show-raw-insn",
                              f"--start-address={start}", f"--stop-address={end}", binary],
                             capture_output=True, text=True, check=True).stdout
    instructions = []
    for line in listing.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\s+(.*)$", line)
        if m:
            instructions.append((int(m.group(1), 16), re.sub(r"\s*<.*>", "", m.group(2)).strip()))
    loops = []   # (first, last) instruction indices of every backward branch's loop
    for k, (address, instruction) in enumerate(instructions):
        m = re.match(r"^(b\.\w+|b|cbnz|cbz|tbnz|tbz)\s.*?0x([0-9a-f]+)$", instruction)
        if m and int(m.group(2), 16) <= address:
            target = int(m.group(2), 16)
            first = next((j for j, (a, _) in enumerate(instructions) if a == target), None)
            if first is not None:
                loops.append((first, k))
    inner = [(f, l) for f, l in loops if not any(f <= f2 and l2 <= l and (f2, l2) != (f, l) for f2, l2 in loops)]
    if not inner:
        return None
    first, last = max(inner, key=lambda fl: sum(1 for _, t in instructions[fl[0]:fl[1] + 1] if MULTIPLY_ACCUMULATE.match(t)))
    body = [t for _, t in instructions[first:last]] + [re.sub(r"0x[0-9a-f]+$", "loop", instructions[last][1])]
    return "loop:\n" + "\n".join(body) + "\n"


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "artifacts/aot/linux-arm64/bitnet"
    if not os.path.exists(binary + ".dbg"):
        sys.exit(f"{binary}.dbg not found: publish the linux-arm64 AOT binary first (scripts/test-aot.sh)")
    objdump = tool(["llvm-objdump", "llvm-objdump-19", "llvm-objdump-14"])
    nm = tool(["llvm-nm", "llvm-nm-19", "llvm-nm-14"])
    mca = tool(["/usr/lib/llvm-19/bin/llvm-mca", "llvm-mca-19", "llvm-mca-18", "llvm-mca-17", "llvm-mca-16", "llvm-mca"])
    print(f"{'kernel loop':58} " + " ".join(f"{cpu + ' (' + name + ')':>26}" for cpu, name in CPUS))
    for suffix, what, weight_bytes in KERNELS:
        loop = innermost_loop(objdump, nm, binary, suffix)
        if loop is None:
            print(f"{what:58} (not found)")
            continue
        cells = []
        for cpu, _ in CPUS:
            report = subprocess.run([mca, "-mtriple=aarch64", f"-mcpu={cpu}", "-mattr=+dotprod", "-iterations=1000"],
                                    input=loop, capture_output=True, text=True).stdout
            m = re.search(r"Total Cycles:\s+(\d+)", report)
            cycles = int(m.group(1)) / 1000 if m else float("nan")
            cells.append(f"{cycles:5.2f} cyc, {weight_bytes / cycles:4.2f} B/cyc")
        print(f"{what:58} " + " ".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    main()
