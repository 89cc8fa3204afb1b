#!/usr/bin/env bash
# Checks that the code is formatted as .editorconfig describes: `dotnet format --verify-no-changes`
# over Serverless.sln (whitespace, code style and analyzer fixes; nothing is rewritten).
# Exits non-zero and lists the files and rules when something would change.
# Usage: scripts/format-check.sh [extra dotnet-format arguments, e.g. whitespace | style | analyzers]
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
dotnet format "$@" Serverless.sln --verify-no-changes --severity warn -v quiet > "$log" 2>&1
code=$?
if [ "$code" -eq 0 ]; then
  echo "format: no changes needed"
  exit 0
fi
grep -E 'error|warning' "$log" | sed -E "s|$PWD/||" | head -200
count=$(grep -cE 'error|warning' "$log")
echo "format: $count places differ from .editorconfig (by rule):"
grep -oE '(error|warning) [A-Z]+[0-9]*' "$log" | awk '{print $2}' | sort | uniq -c | sort -rn
exit "$code"
