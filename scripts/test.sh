#!/usr/bin/env bash
# Runs every test the project has and ends with one line: "N passed, N failed[, N skipped]".
#   0. scripts/arch-models.sh regenerates the arch oracle models (artifacts/arch-models), and
#      scripts/format-check.sh checks the formatting (counted as one test: a difference is one failure);
#      the build itself enforces the analyzers and code style (Directory.Build.props, .editorconfig);
#   1. every xunit.v3 test project of Serverless.sln (x86-64, best ISA the CPU has);
#   2. the kernel/oracle tests again with AVX-512 and with AVX2 switched off (scripts/test-isa.sh);
#   3. the kernel/oracle/tokenizer tests on ARM64 under qemu (scripts/test-arm64.sh);
#   4. the oracle through the Native AOT CLI for linux-x64 and linux-arm64 (qemu) (scripts/test-aot.sh);
#   5. the Pulumi program compiled against the Pulumi SDK kit and run under Pulumi's mocks (scripts/test-deploy.sh).
# Tests marked MachineDependent (trait Category=Machine: wall-clock limits, the page cache's folios,
# page-table queries) run as a group of their own after step 1. Before the total, it prints every
# skip reason with its count, and which kernel sets the run exercised.
# Usage: scripts/test.sh [--no-format] [--no-isa] [--no-arm64] [--no-aot] [--no-deploy]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run_format=1; run_isa=1; run_arm64=1; run_aot=1; run_deploy=1
for a in "$@"; do
  case "$a" in
    --no-format) run_format=0 ;;
    --no-isa) run_isa=0 ;;
    --no-arm64) run_arm64=0 ;;
    --no-aot) run_aot=0 ;;
    --no-deploy) run_deploy=0 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
artifacts="$root/artifacts/test"
logdir="$root/artifacts/test-logs"
mkdir -p "$logdir"
rm -f "$logdir"/*.log
passed=0; failed=0; skipped=0

# Adds the counts from every xunit/MTP summary in a log ("total: N", "failed: N", "succeeded: N",
# "skipped: N"). A suite that exits non-zero without a summary counts as one failure.
tally() { # name exitcode logfile
  local name=$1 code=$2 log=$3
  local s f k
  # Runners colour their summaries when CI is set; strip the escape codes before reading them.
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"
  s=$(grep -E '^\s*succeeded: [0-9]+' "$log" | awk '{n+=$2} END {print n+0}')
  f=$(grep -E '^\s*failed: [0-9]+' "$log" | awk '{n+=$2} END {print n+0}')
  k=$(grep -E '^\s*skipped: [0-9]+' "$log" | awk '{n+=$2} END {print n+0}')
  if [ "$code" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "!! $name exited with $code and reported no failing test: counted as one failure"; fi
  passed=$((passed + s)); failed=$((failed + f)); skipped=$((skipped + k))
  echo "== $name: $s passed, $f failed, $k skipped (exit $code)"
}

# The small llama / bitnet / bitnet-25 models of shared/oracle/archs, regenerated (their tests skip,
# naming the reason, when this fails; the line below says whether it did).
echo "== arch models (scripts/arch-models.sh)"
scripts/arch-models.sh "$root/artifacts/arch-models" > "$logdir/arch-models.log" 2>&1 || true
tail -1 "$logdir/arch-models.log"

# dotnet format --verify-no-changes over Serverless.sln; it compiles on its own, so it runs before
# the build (whose failure ends the run) and counts as one test.
if [ "$run_format" = 1 ]; then
  echo "== formatting (scripts/format-check.sh)"
  if scripts/format-check.sh > "$logdir/format.log" 2>&1; then
    passed=$((passed + 1)); tail -1 "$logdir/format.log"
  else
    failed=$((failed + 1))
    head -40 "$logdir/format.log"
    echo "!! the code is not formatted as .editorconfig says (scripts/format-check.sh; fix with dotnet format Serverless.sln --severity warn): counted as one failure"
  fi
fi

echo "== building Serverless.sln (Release)"
if ! dotnet build Serverless.sln -c Release --artifacts-path "$artifacts" -v quiet -nologo > "$logdir/build.log" 2>&1; then
  cat "$logdir/build.log" | grep -E 'error|Error' | head -50
  echo "$passed passed, $((failed + 1)) failed"
  exit 1
fi

# Machine-dependent tests run in their own group below; the AOT binary tests run in step 4.
for proj in tests/*/*.csproj; do
  name=$(basename "$proj" .csproj)
  # Test projects outside Serverless.sln (the Pulumi mock tests) have their own script below.
  grep -qF "\\$name.csproj\"" Serverless.sln || continue
  exe="$artifacts/bin/$name/release/$name"
  [ -x "$exe" ] || { echo "!! $exe missing"; failed=$((failed + 1)); continue; }
  echo "== $name"
  (cd "$(dirname "$exe")" && "$exe" --progress off --filter-not-trait 'Category=Machine' --filter-not-trait 'Category=Aot') > "$logdir/$name.log" 2>&1
  code=$?
  grep -E 'failed |\[FAIL\]|error' "$logdir/$name.log" | head -40
  tally "$name" "$code" "$logdir/$name.log"
done

echo "== machine-dependent tests (Category=Machine: timing, page-cache folios, page tables)"
for proj in tests/*/*.csproj; do
  name=$(basename "$proj" .csproj)
  exe="$artifacts/bin/$name/release/$name"
  grep -rqs --include='*.cs' 'MachineDependent(' "$(dirname "$proj")" || continue
  (cd "$(dirname "$exe")" && "$exe" --progress off --filter-trait 'Category=Machine') > "$logdir/$name.machine.log" 2>&1
  code=$?
  grep -E 'failed |\[FAIL\]|error' "$logdir/$name.machine.log" | head -40
  tally "$name, machine-dependent" "$code" "$logdir/$name.machine.log"
done

if [ "$run_isa" = 1 ] && [ -x scripts/test-isa.sh ]; then
  scripts/test-isa.sh "$artifacts" > "$logdir/isa.log" 2>&1; code=$?
  grep -E '^== ISA|kernel sets supported|^failed |\[FAIL\]' "$logdir/isa.log" | head -40
  tally "x86 ISA fallbacks" "$code" "$logdir/isa.log"
fi

if [ "$run_arm64" = 1 ] && [ -x scripts/test-arm64.sh ]; then
  scripts/test-arm64.sh > "$logdir/arm64.log" 2>&1; code=$?
  grep -E 'kernel sets supported|^failed |\[FAIL\]' "$logdir/arm64.log" | head -40
  tally "ARM64 (qemu)" "$code" "$logdir/arm64.log"
fi

if [ "$run_aot" = 1 ] && [ -x scripts/test-aot.sh ]; then
  scripts/test-aot.sh "$artifacts" > "$logdir/aot.log" 2>&1; code=$?
  grep -E 'oracle (capital|chat)|failed |\[FAIL\]|Assert' "$logdir/aot.log" | head -40
  tally "Native AOT (x64; arm64 under qemu)" "$code" "$logdir/aot.log"
fi

if [ "$run_deploy" = 1 ]; then
  scripts/test-deploy.sh "$root/artifacts/deploy" > "$logdir/deploy.log" 2>&1; code=$?
  grep -E '!!|error|failed |\[FAIL\]' "$logdir/deploy.log" | head -40
  tally "Pulumi program under mocks" "$code" "$logdir/deploy.log"
fi

# Every skip, grouped by its reason (the indented line the runner prints after "skipped NAME").
echo "== skipped tests by reason (all passes)"
awk '/^skipped /{ if (pending) n["(no reason given)"]++; pending = 1; next }
     pending && /^  [^ ]/ { r = $0; sub(/^ +/, "", r); n[r]++; pending = 0 }
     END { if (pending) n["(no reason given)"]++; for (r in n) printf "%6d × %s\n", n[r], r }' "$logdir"/*.log | sort -rn
[ "$skipped" -gt 0 ] || echo "     none"

# Which kernel sets ran: each pass's kernel tests log the sets its CPU (or switch, or qemu) supports.
known=$(grep -hoE 'kernel sets known: [a-z0-9, ]+' "$logdir"/*.log 2>/dev/null | head -1 | sed 's/^kernel sets known: //; s/,//g')
supported=" $(grep -hoE 'kernel sets supported here: [a-z0-9, ]+' "$logdir"/*.log 2>/dev/null | sed 's/^kernel sets supported here: //; s/,//g' | tr '\n' ' ') "
ran=""; missing=""
for k in $known; do
  case "$supported" in *" $k "*) ran="$ran $k" ;; *) missing="$missing $k" ;; esac
done
if [ -z "$known" ]; then
  echo "kernel sets exercised: unknown (no kernel test logged them)"
else
  note=""
  [ "$run_arm64" = 1 ] || note=" (the ARM64 pass under qemu was not run)"
  echo "kernel sets exercised:${ran:- none}; not on this CPU:${missing:- none}$note"
  case " $missing " in *" avx512vnni "*) echo "!! the AVX-512 VNNI kernels (emitted machine code) were not exercised: this CPU or runtime lacks AVX512-VNNI" ;; esac
fi

echo "logs: $logdir"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
