#!/usr/bin/env bash
# Runs the kernel, threading, oracle and tokenizer tests as linux-arm64 code under qemu-user:
# publishes tests/Inference.Core.Tests self-contained for linux-arm64 and runs the xunit.v3 test
# executable with qemu-aarch64-static. The test log shows "AdvSimd=True Dp=True": both the neon
# (smull/sadalp) and the dotprod (sdot) kernel sets run and are checked against the scalar kernel.
#
# What a fresh Debian/Ubuntu x86-64 machine needs, installed here when missing (as root):
#   qemu-user-static, libc6-arm64-cross, libstdc++6-arm64-cross  (apt), and libssl3 for arm64,
#   which .NET's crypto shim needs (xunit hashes test ids); it is fetched with apt into a private
#   folder (artifacts/arm64-sysroot) without adding a dpkg architecture to the system.
# DOTNET_EnableWriteXorExecute=0: with W^X the JIT writes code through a second mapping, which
# qemu-user's translation cache does not notice (stale code: SIGILL/SIGSEGV at random).
# Wall-clock assertions (trait Needs=timing, see tests/Shared/TestCategories.cs) are left out:
# emulation is 10-50× slower, so their thresholds say nothing about ARM64 hardware. Every other
# skip is printed with its reason.
# Usage: scripts/test-arm64.sh [extra test-exe arguments]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DEBIAN_FRONTEND=noninteractive

source scripts/lib/arm64-qemu.sh
apt_ensure "${QEMU_ARM64_PACKAGES[@]}" || exit 1
ssl_dir=$(arm64_libssl_dir "$root") || exit 1

artifacts="$root/artifacts/arm64"
echo "== publishing tests/Inference.Core.Tests for linux-arm64 (self-contained)"
dotnet publish tests/Inference.Core.Tests -c Release -r linux-arm64 --self-contained \
  --artifacts-path "$artifacts" -v quiet -nologo > "$artifacts.publish.log" 2>&1 || { grep -E 'error' "$artifacts.publish.log" | head -20; echo "publish failed"; exit 1; }
publish_dir="$artifacts/publish/Inference.Core.Tests/release_linux-arm64"

echo "== running under $(qemu-aarch64-static --version | head -1)"
cd "$publish_dir"
DOTNET_EnableWriteXorExecute=0 LD_LIBRARY_PATH="$ssl_dir" \
  qemu-aarch64-static -L /usr/aarch64-linux-gnu ./Inference.Core.Tests --progress off \
    --filter-namespace 'BitNet.Inference.Tests.Kernels' --filter-namespace 'BitNet.Inference.Tests.Threading' --filter-namespace 'BitNet.Inference.Tests.Memory' \
    --filter-namespace 'BitNet.Inference.Tests.Oracle' --filter-namespace 'BitNet.Inference.Tests.Tokenization' \
    --filter-not-trait 'Needs=timing' --filter-not-trait 'Category=Aot' "$@" 2>&1
