#!/usr/bin/env bash
# Compiles the Pulumi program (deploy/pulumi) and runs its mock tests (tests/Deploy.Pulumi.Tests).
# The reachable NuGet feed serves no Pulumi packages, so both are restored from the Pulumi SDK kit
# (shared/pulumi-sdk: the real core SDK and docker-build, API facades of Pulumi.Aws and
# Pulumi.AzureNative, all with their real ids and versions) plus the normal feed. Because those ids
# and versions are the real ones, everything here restores into a private NUGET_PACKAGES folder and
# never into the global NuGet cache. A compile error in the program fails the build and this script.
# It also checks the two projects' formatting (dotnet format --verify-no-changes); a difference fails it.
# Usage: scripts/test-deploy.sh [ARTIFACTS_DIR]     (prints the test runner's summary; exit 0 = all passed)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
artifacts=${1:-$root/artifacts/deploy}

kit=""
for candidate in "${BITNET_SHARED_DIR:-}" "$root/../shared" "$root/../../shared"; do
  if [ -n "$candidate" ] && [ -f "$candidate/pulumi-sdk/build.sh" ]; then kit=$candidate/pulumi-sdk; break; fi
done
[ -n "$kit" ] || { echo "!! Pulumi SDK kit not found (shared/pulumi-sdk beside the repository; set BITNET_SHARED_DIR)"; exit 1; }

out=$root/artifacts/pulumi-sdk
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
echo "== Pulumi SDK kit ($kit -> $out/feed)"
bash "$kit/build.sh" "$out" || { echo "!! the Pulumi SDK kit did not build"; exit 1; }

export NUGET_PACKAGES=$out/nuget-packages
echo "== building deploy/pulumi and tests/Deploy.Pulumi.Tests (NUGET_PACKAGES=$NUGET_PACKAGES)"
if ! dotnet build tests/Deploy.Pulumi.Tests/Deploy.Pulumi.Tests.csproj -c Release --artifacts-path "$artifacts" \
     -p:RestoreAdditionalProjectSources="$out/feed" -v quiet -nologo; then
  echo "!! deploy/pulumi or its tests did not compile"
  exit 1
fi

# The same formatting check as scripts/format-check.sh for Serverless.sln (the analyzers already ran
# in the build above); MSBuild reads the kit feed from the environment when dotnet format restores.
echo "== formatting of deploy/pulumi and tests/Deploy.Pulumi.Tests"
formatted=1
for proj in deploy/pulumi/BitNet.Deploy.Pulumi.csproj tests/Deploy.Pulumi.Tests/Deploy.Pulumi.Tests.csproj; do
  if ! RestoreAdditionalProjectSources="$out/feed" dotnet format "$proj" --verify-no-changes --severity warn -v quiet; then
    formatted=0; echo "!! $proj is not formatted as .editorconfig says (fix: dotnet format $proj --severity warn)"
  fi
done

exe=$artifacts/bin/Deploy.Pulumi.Tests/release/Deploy.Pulumi.Tests
echo "== Deploy.Pulumi.Tests"
(cd "$(dirname "$exe")" && "$exe" --progress off); code=$?
# A formatting difference fails the script; scripts/test.sh counts it as one failure.
[ "$code" -ne 0 ] || [ "$formatted" = 1 ] || code=1
exit "$code"
