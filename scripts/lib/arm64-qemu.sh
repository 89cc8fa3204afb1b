# Sourced by the scripts that run linux-arm64 .NET code under qemu-user (test-arm64.sh, test-aot.sh).

# apt_ensure CHECK PACKAGE [CHECK PACKAGE ...]: installs with apt-get (as root), in one go, each
# PACKAGE whose CHECK (a shell test, evaluated) fails.
apt_ensure() {
  local need=()
  while [ $# -ge 2 ]; do eval "$1" >/dev/null 2>&1 || need+=("$2"); shift 2; done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "== installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || { echo "apt-get install failed" >&2; return 1; }
}

# What running linux-arm64 code under qemu-user needs: the emulator and the arm64 C and C++ runtimes.
QEMU_ARM64_PACKAGES=(
  "command -v qemu-aarch64-static" qemu-user-static
  "[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]" libc6-arm64-cross
  "[ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ]" libstdc++6-arm64-cross
)

# arm64_libssl_dir ROOT: prints a folder holding libssl3 for arm64 (for LD_LIBRARY_PATH), which .NET's
# crypto shim needs, fetching it with apt into ROOT/artifacts/arm64-sysroot the first time, without
# adding a dpkg architecture to the system.
arm64_libssl_dir() {
  local root=$1
  local sysroot="$root/artifacts/arm64-sysroot"
  local ssl_dir="$sysroot/usr/lib/aarch64-linux-gnu"
  if [ ! -e "$ssl_dir/libssl.so.3" ]; then
    echo "== fetching libssl3 (arm64) into $sysroot" >&2
    local apt_dir="$root/artifacts/arm64-apt"
    mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$sysroot"
    touch "$apt_dir/status"
    local apt_opts=(-o "Dir::State=$apt_dir/state" -o "Dir::Cache=$apt_dir/cache" -o "Dir::State::status=$apt_dir/status"
                    -o APT::Architecture=arm64 -o "APT::Architectures::=arm64" -o Debug::NoLocking=1)
    apt-get "${apt_opts[@]}" update -qq >/dev/null &&
      (cd "$apt_dir" && apt-get "${apt_opts[@]}" download libssl3 >/dev/null 2>&1) &&
      dpkg -x "$(ls "$apt_dir"/libssl3_*_arm64.deb | head -1)" "$sysroot" || { echo "could not fetch libssl3:arm64" >&2; return 1; }
  fi
  echo "$ssl_dir"
}
