#!/usr/bin/env bash
# Regenerates the four small models of shared/oracle/archs (llama tied and untied, bitnet,
# bitnet-25) with that folder's deterministic generator and checks their sha256.
#   needs: node + npm (npm pack llama3-tokenizer-js@1.2.0, the Llama 3 vocabulary) and Debian's
#   python3-numpy for /usr/bin/python3 (installed here with apt-get when running as root).
# Usage: scripts/arch-models.sh [OUTDIR]   (default artifacts/arch-models)
# Prints "arch models: ready in OUTDIR" on success; otherwise the reason, and exits non-zero.
# Already generated models whose sha256 is right are kept.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-$root/artifacts/arch-models}
shared=${BITNET_SHARED_DIR:-$root/../shared}
src="$shared/oracle/archs"
[ -f "$src/gen_arch.py" ] || { echo "arch models: $src/gen_arch.py not found (set BITNET_SHARED_DIR)"; exit 1; }
mkdir -p "$out"

declare -A sums=(
  [llama-small]=d6ad79a72548c61e2bec9903ed6f54c1323eb51c4939131e19c38a244f67c237
  [llama-untied-h128]=101d9e3f09d69811276f4c8ea26f6dba830dda333c4462b88b97bd0481af167e
  [bitnet-arch-small]=58daab46f940550291808cd2145cf30458a3ade168c9ef2253aca7a62dfa8759
  [bitnet25-small]=26e423d1b37e4b777b26bfdf558fa502af7f5745c6426d4dce1042bd76d17a91
)
ok() { [ -f "$out/$1-i2_s.gguf" ] && [ "$(sha256sum "$out/$1-i2_s.gguf" | cut -d' ' -f1)" = "${sums[$1]}" ]; }
missing=()
for m in "${!sums[@]}"; do ok "$m" || missing+=("$m"); done
if [ ${#missing[@]} -eq 0 ]; then echo "arch models: ready in $out"; exit 0; fi

python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
if ! "$python" -c 'import numpy' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing python3-numpy"
    # Another apt run (CI's own installs) may hold the lock: wait for it rather than fail.
    apt=(apt-get -o DPkg::Lock::Timeout=600 -y -qq)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install python3-numpy > "$out/apt.log" 2>&1 ||
      { DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >> "$out/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" install python3-numpy >> "$out/apt.log" 2>&1; } ||
      tail -5 "$out/apt.log"
    python=/usr/bin/python3
  fi
  "$python" -c 'import numpy' 2>/dev/null || { echo "arch models: numpy is not available to $python (apt-get install python3-numpy)"; exit 1; }
fi
command -v node >/dev/null && command -v npm >/dev/null || { echo "arch models: node and npm are needed (apt-get install nodejs npm)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src/gen_arch.py" "$src/dump_vocab.cjs" "$work/"
echo "== npm pack llama3-tokenizer-js@1.2.0"
(cd "$work" && npm pack --silent llama3-tokenizer-js@1.2.0 > npm.log 2>&1 && tar xzf llama3-tokenizer-js-1.2.0.tgz) ||
  { cat "$work/npm.log"; echo "arch models: npm pack llama3-tokenizer-js@1.2.0 failed"; exit 1; }
(cd "$work" && node dump_vocab.cjs > /dev/null) || { echo "arch models: dump_vocab.cjs failed"; exit 1; }
vocab_sum=$(sha256sum "$work/llama3_vocab.json" | cut -d' ' -f1)
case "$vocab_sum" in 7b02295c*d9fe) ;; *) echo "arch models: llama3_vocab.json has sha256 $vocab_sum, expected 7b02295c…d9fe"; exit 1 ;; esac

args() {
  case $1 in
    llama-small) echo "--hidden 256 --heads 4 --kv-heads 2 --arch llama --name llama-small-dummy" ;;
    llama-untied-h128) echo "--hidden 128 --heads 2 --kv-heads 1 --arch llama --untied --name llama-untied-h128-dummy" ;;
    bitnet-arch-small) echo "--hidden 256 --heads 4 --kv-heads 2 --arch bitnet --name bitnet-arch-small-dummy" ;;
    bitnet25-small) echo "--hidden 256 --heads 4 --kv-heads 2 --arch bitnet-25 --name bitnet25-small-dummy" ;;
  esac
}
status=0
for m in "${missing[@]}"; do
  echo "== generating $m"
  # shellcheck disable=SC2046
  (cd "$work" && "$python" gen_arch.py --vocab llama3_vocab.json --layers 4 --ffn 512 $(args "$m") --out "$out/$m" > /dev/null) ||
    { echo "arch models: gen_arch.py failed for $m"; status=1; continue; }
  ok "$m" || { echo "arch models: $m-i2_s.gguf has sha256 $(sha256sum "$out/$m-i2_s.gguf" | cut -d' ' -f1), expected ${sums[$m]}"; status=1; }
done
[ $status = 0 ] && echo "arch models: ready in $out"
exit $status
