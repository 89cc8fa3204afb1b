#!/bin/sh
# Starts the build of this Native AOT host that the CPU runs best: "$0-x64v4" (x86-64-v4) where the CPU
# has all five AVX-512 subsets that level requires, else "$0-x64v3". A v4 binary refuses to start without
# them; where they exist it runs the C# vector code (attention, norms) at 512 bits.
# Installed under the host's own name (/var/runtime/bootstrap, /usr/local/bin/bitnet-server), so it
# reads no arguments of its own: all of them, stdin and the exit code pass through exec.
# BITNET_X64_LEVEL=v3 or v4 overrides the choice; BITNET_CPUINFO names another cpuinfo file (tests).
set -eu
case ${BITNET_X64_LEVEL:-auto} in
  v3 | v4) level=$BITNET_X64_LEVEL ;;
  auto)
    flags=
    # Shell built-ins only: no process besides the host itself on the cold-start path.
    while IFS= read -r line; do
      case $line in flags*) flags=" ${line#*:} "; break ;; esac
    done < "${BITNET_CPUINFO:-/proc/cpuinfo}"
    level=v4
    for f in avx512f avx512bw avx512cd avx512dq avx512vl; do
      case $flags in *" $f "*) ;; *) level=v3 ;; esac
    done ;;
  *)
    echo "BITNET_X64_LEVEL must be v3, v4 or auto, not '${BITNET_X64_LEVEL}'" >&2
    exit 2 ;;
esac
exec "$0-x64$level" "$@"
