#!/bin/sh
# Publishes a host with Native AOT for an image's platform as OUT/NAME (src/NativeAot.props sets the
# instruction sets). arm64: one binary (ARMv8.2-A + dotprod). amd64: two, NAME-x64v3 (AVX2) and
# NAME-x64v4 (AVX-512), and NAME is start-x64.sh, which starts the one the CPU runs.
# Usage: publish-native.sh PROJECT NAME OUT TARGETARCH [PUBLISH-ARGUMENTS...]
# (further arguments go to every dotnet publish, e.g. a cross linker's settings)
set -eu
[ $# -ge 4 ] || { echo "usage: publish-native.sh PROJECT NAME OUT TARGETARCH [PUBLISH-ARGUMENTS...]" >&2; exit 2; }
project=$1 name=$2 out=$3 arch=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
# Publishes into a scratch folder and keeps only the executable (not the stripped symbols beside it).
# The build's own settings come in $build (words without spaces), the caller's arguments after TARGET.
publish() { # TARGET-FILE [PUBLISH-ARGUMENTS...]
  target=$1; shift
  dotnet publish "$project" -c Release -p:PublishAot=true -p:StripSymbols=true -o "$out/.publish" $build "$@"
  test -x "$out/.publish/$name"
  mv "$out/.publish/$name" "$target"
  rm -rf "$out/.publish"
}
mkdir -p "$out"
case $arch in
  arm64)
    build="-r linux-arm64"
    publish "$out/$name" "$@" ;;
  amd64)
    # Separate intermediate folders, a precaution: the two builds differ only in one property, and
    # nothing the first one leaves in obj/ should be able to stand in for the second's output.
    for level in v3 v4; do
      build="-r linux-x64 -p:BitNetX64Level=$level -p:IntermediateOutputPath=obj/x64$level/"
      publish "$out/$name-x64$level" "$@"
    done
    cp "$here/start-x64.sh" "$out/$name"
    chmod 755 "$out/$name" ;;
  *)
    echo "unsupported TARGETARCH '$arch' (use --platform linux/arm64 or linux/amd64)" >&2
    exit 1 ;;
esac
