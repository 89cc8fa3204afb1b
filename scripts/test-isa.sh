#!/usr/bin/env bash
# Runs the kernel, threading and oracle tests again with the x86 fallbacks forced, so every kernel
# path is exercised on one machine:
#   1. AVX-512 off  -> the avx2 kernel set is the best available;
#   2. AVX2 off     -> only the scalar kernels remain.
# .NET 10 reads DOTNET_EnableAVX512 (DOTNET_EnableAVX512F no longer switches AVX-512 off on its own);
# both are set, and the script checks from the test log that the switch really took effect.
# Usage: scripts/test-isa.sh [ARTIFACTS]   (ARTIFACTS: a Release --artifacts-path that already holds
#        bin/Inference.Core.Tests/release/Inference.Core.Tests; built here when omitted)
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
artifacts=${1:-$PWD/artifacts/isa}
exe="$artifacts/bin/Inference.Core.Tests/release/Inference.Core.Tests"
if [ ! -x "$exe" ]; then
  echo "== building tests/Inference.Core.Tests (Release)"
  dotnet build tests/Inference.Core.Tests -c Release --artifacts-path "$artifacts" -v quiet -nologo || { echo "build failed"; exit 1; }
fi
# Machine-dependent tests do not depend on the instruction set and run once, in scripts/test.sh;
# the AOT binary tests run in scripts/test-aot.sh.
filters=(--filter-namespace 'BitNet.Inference.Tests.Kernels' --filter-namespace 'BitNet.Inference.Tests.Threading' --filter-namespace 'BitNet.Inference.Tests.Memory'
         --filter-namespace 'BitNet.Inference.Tests.Oracle' --filter-not-trait 'Category=Machine' --filter-not-trait 'Category=Aot')
status=0
run_mode() { # label, expected-absent kernel set, env assignments...
  local label=$1 absent=$2; shift 2
  echo "== ISA mode: $label ($*)"
  local log; log=$(mktemp)
  (cd "$(dirname "$exe")" && env "$@" "$exe" --progress off "${filters[@]}") > "$log" 2>&1
  local code=$?
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"   # the runner colours its summary when CI is set
  grep -E 'kernel sets (supported here|known)' "$log" | head -2
  # Every skip with its reason (scripts/test.sh groups them).
  grep -A1 -E '^skipped ' "$log" | grep -vE '^--$'
  grep -E '^failed |^\s*(total|failed|succeeded|skipped): ' "$log"
  if grep -E 'kernel sets supported here' "$log" | head -1 | grep -qE "(here: |, )$absent(,|;)"; then
    echo "!! $label: the runtime still reports '$absent'; the switch did not take effect"; status=1
  fi
  [ "$code" -eq 0 ] || status=1
  rm -f "$log"
}
run_mode "AVX-512 off" avx512 DOTNET_EnableAVX512=0 DOTNET_EnableAVX512F=0
run_mode "AVX2 off" avx2 DOTNET_EnableAVX2=0
exit $status
