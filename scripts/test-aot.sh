#!/usr/bin/env bash
# Publishes the bitnet CLI with Native AOT for linux-x64 and linux-arm64 (the baselines of
# src/NativeAot.props: x86-64-v3, armv8.2-a + dotprod) and runs the oracle through both binaries
# (tests/Inference.Core.Tests, class AotBinaryOracleTests: tokenize, greedy generate, logits): the
# x64 binary directly, the arm64 one under qemu-user. Then publishes bitnet-server and the Lambda
# bootstrap for this machine's architecture as the images do (containers/publish-native.sh) and runs
# them (tests/Hosts.Tests, class PublishedHostTests: best kernel set of this CPU, answers as the engine).
#
# What a fresh Debian/Ubuntu x86-64 machine needs, installed here when missing (as root):
#   clang, lld, binutils-aarch64-linux-gnu, libc6-dev-arm64-cross, gcc-aarch64-linux-gnu (for its
#   libgcc-N-dev-arm64-cross, whatever N the distribution has)
#   (ILC's arm64 cross link: clang --target=aarch64-linux-gnu finds Debian's cross C runtime itself,
#   so no --sysroot), and what test-arm64.sh needs for qemu (scripts/lib/arm64-qemu.sh).
# Usage: scripts/test-aot.sh [ARTIFACTS]   (ARTIFACTS: a Release --artifacts-path that already holds
#        bin/Inference.Core.Tests/release/Inference.Core.Tests and bin/Hosts.Tests/release/Hosts.Tests;
#        built here when omitted)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DEBIAN_FRONTEND=noninteractive
artifacts=${1:-$root/artifacts/aot-tests}
exe="$artifacts/bin/Inference.Core.Tests/release/Inference.Core.Tests"
hosts_exe="$artifacts/bin/Hosts.Tests/release/Hosts.Tests"
for project in Inference.Core.Tests Hosts.Tests; do
  [ -x "$artifacts/bin/$project/release/$project" ] && continue
  echo "== building tests/$project (Release)"
  dotnet build "tests/$project" -c Release --artifacts-path "$artifacts" -v quiet -nologo || { echo "build failed"; exit 1; }
done

source scripts/lib/arm64-qemu.sh
apt_ensure "${QEMU_ARM64_PACKAGES[@]}" \
  "command -v clang" clang \
  "command -v ld.lld" lld \
  "command -v aarch64-linux-gnu-objcopy" binutils-aarch64-linux-gnu \
  "[ -e /usr/aarch64-linux-gnu/lib/libc.so ]" libc6-dev-arm64-cross \
  "ls /usr/lib/gcc-cross/aarch64-linux-gnu/*/crtbegin.o" gcc-aarch64-linux-gnu || exit 1
ssl_dir=$(arm64_libssl_dir "$root") || exit 1

out="$root/artifacts/aot"
mkdir -p "$out"
publish() { # rid, extra publish arguments...
  local rid=$1; shift
  echo "== publishing src/Cli with Native AOT for $rid"
  dotnet publish src/Cli -c Release -r "$rid" -p:PublishAot=true "$@" -o "$out/$rid" \
    --artifacts-path "$out/build" -v quiet -nologo > "$out/$rid.publish.log" 2>&1 ||
    { grep -E 'error' "$out/$rid.publish.log" | head -20; echo "publish for $rid failed"; exit 1; }
}
publish linux-x64
publish linux-arm64 -p:LinkerFlavor=lld -p:ObjCopyName=aarch64-linux-gnu-objcopy

# The arm64 binary through qemu, with the arm64 C library and libssl.
runner="$out/bitnet-arm64-qemu"
cat > "$runner" <<EOF
#!/usr/bin/env bash
LD_LIBRARY_PATH="$ssl_dir" exec qemu-aarch64-static -L /usr/aarch64-linux-gnu "$out/linux-arm64/bitnet" "\$@"
EOF
chmod +x "$runner"
file "$out/linux-x64/bitnet" "$out/linux-arm64/bitnet" | sed 's/, BuildID.*//'

echo "== oracle through both binaries"
log=$(mktemp)
(cd "$(dirname "$exe")" && BITNET_AOT_BINARIES="$out/linux-x64/bitnet:$runner" \
  "$exe" --progress off --output Detailed --filter-class 'BitNet.Inference.Tests.Oracle.AotBinaryOracleTests') > "$log" 2>&1
code=$?
sed -i 's/\x1b\[[0-9;]*m//g' "$log"
grep -E 'oracle (capital|chat)|^failed |Assert|^\s*(total|failed|succeeded|skipped): ' "$log"

# The hosts as the images publish them, for this machine's architecture (x86-64: the launcher and
# its v3 and v4 builds).
case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=unknown ;; esac
hosts="$out/hosts"
rm -rf "$hosts"
hosts_code=0
for host in "src/Hosts.Server/Hosts.Server.csproj bitnet-server" "src/Hosts.Lambda/Hosts.Lambda.csproj bootstrap"; do
  set -- $host
  echo "== publishing $1 as the images do (containers/publish-native.sh, $arch)"
  sh containers/publish-native.sh "$1" "$2" "$hosts" "$arch" > "$out/$2.publish.log" 2>&1 ||
    { grep -E 'error' "$out/$2.publish.log" | head -20; echo "publishing $2 failed"; hosts_code=1; }
done
ls -l "$hosts" | sed 1d

echo "== the published hosts"
(cd "$(dirname "$hosts_exe")" && BITNET_PUBLISHED_HOSTS="$hosts" \
  "$hosts_exe" --progress off --output Detailed --filter-class 'BitNet.Hosts.Tests.PublishedHostTests') > "$log" 2>&1 || hosts_code=1
sed -i 's/\x1b\[[0-9;]*m//g' "$log"
grep -E "ready in|^failed |Assert|^\s*(total|failed|succeeded|skipped): " "$log"
rm -f "$log"
[ "$code" -eq 0 ] && code=$hosts_code
exit "$code"
