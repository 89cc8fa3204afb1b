#!/usr/bin/env bash
# Publishes the bitnet CLI with Native AOT for linux-x64 and linux-arm64 (the baselines of
# src/NativeAot.props: x86-64-v3, armv8.2-a + dotprod) and runs the oracle through both binaries
# (tests/Inference.Core.Tests, class AotBinaryOracleTests: tokenize, greedy generate, logits): the
# x64 binary directly, the arm64 one under qemu-user. Then publishes bitnet-server and the Lambda
# bootstrap as the images do (containers/publish-native.sh), for this machine's architecture and, on
# x86-64, for arm64 too, and runs them (tests/Hosts.Tests, class PublishedHostTests: the kernel set
# they must use, answers as the engine), the arm64 ones under qemu-user.
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

# The hosts as the images publish them (containers/publish-native.sh): for this machine's
# architecture (x86-64: the launcher and its v3 and v4 builds), and on x86-64 also for arm64, run
# under qemu through wrapper scripts of the hosts' names.
hosts_code=0
publish_hosts() { # FOLDER ARCH [PUBLISH-ARGUMENTS...]
  local folder=$1 arch=$2 project name; shift 2
  rm -rf "$folder"
  for host in "src/Hosts.Server/Hosts.Server.csproj:bitnet-server" "src/Hosts.Lambda/Hosts.Lambda.csproj:bootstrap"; do
    project=${host%%:*} name=${host##*:}
    echo "== publishing $project as the images do (containers/publish-native.sh, $arch)"
    sh containers/publish-native.sh "$project" "$name" "$folder" "$arch" "$@" > "$out/$name-$arch.publish.log" 2>&1 ||
      { grep -E 'error' "$out/$name-$arch.publish.log" | head -20; echo "publishing $name for $arch failed"; hosts_code=1; }
  done
  ls -l "$folder" | sed 1d
}
test_hosts() { # FOLDER [KERNEL-SET]
  echo "== the published hosts in $1"
  (cd "$(dirname "$hosts_exe")" && BITNET_PUBLISHED_HOSTS="$1" BITNET_PUBLISHED_KERNELS="${2:-}" \
    "$hosts_exe" --progress off --output Detailed --filter-class 'BitNet.Hosts.Tests.PublishedHostTests') > "$log" 2>&1 || hosts_code=1
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"
  grep -E "ready in|^failed |Assert|^\s*(total|failed|succeeded|skipped): " "$log"
}
case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=unknown ;; esac
publish_hosts "$out/hosts" "$arch"
test_hosts "$out/hosts"
if [ "$arch" = amd64 ]; then
  publish_hosts "$out/hosts-arm64" arm64 -p:LinkerFlavor=lld -p:ObjCopyName=aarch64-linux-gnu-objcopy
  mkdir -p "$out/hosts-arm64-qemu"
  for name in bitnet-server bootstrap; do
    printf '#!/usr/bin/env bash\nLD_LIBRARY_PATH="%s" exec qemu-aarch64-static -L /usr/aarch64-linux-gnu "%s" "$@"\n' \
      "$ssl_dir" "$out/hosts-arm64/$name" > "$out/hosts-arm64-qemu/$name"
    chmod +x "$out/hosts-arm64-qemu/$name"
  done
  # The arm64 builds' baseline (armv8.2-a + dotprod), which qemu provides: they must use it.
  test_hosts "$out/hosts-arm64-qemu" dotprod
fi
rm -f "$log"
[ "$code" -eq 0 ] && code=$hosts_code
exit "$code"
