#!/usr/bin/env bash
# Fuzz the Cryptoki C ABI for SECONDS (default 60): builds fuzz/abi_fuzz.c with clang's libFuzzer
# (and AddressSanitizer when its runtime is installed), provisions a fresh emulated Trust&GO chip
# in a temporary filestore, and runs one fuzzing process seeded with fuzz/corpus.
#
#   bash fuzz/run.sh 1200            # 20 minutes
#   FUZZ_OUT=/tmp/f bash fuzz/run.sh  # where the grown corpus, findings and logs go
#   FUZZ_FLAGS=-len_control=0 bash fuzz/run.sh 600   # more libFuzzer flags
#   bash fuzz/run.sh merge            # fold the grown corpus's new coverage into fuzz/corpus
#
# Output (default build/fuzz/): corpus/ (inputs that found new behaviour), findings/ (crash-*,
# timeout-*: copy each into fuzz/corpus/ once fixed), module.log (the module's own log), and
# fuzz.log. Needs clang and libclang-rt-dev (`apt-get install clang libclang-rt-dev`); CI does
# not: it replays fuzz/corpus with gcc (tests/abi/test_fuzz_corpus.py).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=${FUZZ_OUT:-build/fuzz}
python=${PYTHON:-.venv/bin/python}
module=$PWD/cryptoki/libatecc_pkcs11.so

command -v clang >/dev/null || { echo "fuzz: clang is not installed (apt-get install clang libclang-rt-dev)" >&2; exit 2; }
[ -f "$module" ] || "$python" -m native.build_module "$module" >/dev/null
mkdir -p "$out/corpus" "$out/findings"

sanitizers=fuzzer,address
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' > "$out/probe.c"
clang -fsanitize=$sanitizers "$out/probe.c" -o "$out/probe" 2>/dev/null || sanitizers=fuzzer
clang -g -O1 -fsanitize=$sanitizers -I/usr/include/p11-kit-1 fuzz/abi_fuzz.c -o "$out/abi_fuzz" -ldl
echo "fuzz: built with -fsanitize=$sanitizers"

store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
"$python" - "$store" <<'EOF'
import sys
from pathlib import Path

from atecc.emulator.profiles import create_chip

store = Path(sys.argv[1])
create_chip(store / "chip0.json", "ATECC608-TNGTLS", serial=bytes.fromhex("0123aabbccddeeff01"))
(store / "0.conf").write_text(
    "interface = emulator,chip0.json\ndevice = ATECC608-TNGTLS\nlabel = FUZZ\n"
    "root_ca = chip0.root-ca.pem\n",
    encoding="utf-8",
)
EOF

# Python is never finalised in a C host: leak reports would be noise.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1:handle_abort=1}
export ATECC_FUZZ_MODULE=$module ATECC_PKCS11_FILESTORE=$store
export ATECC_PKCS11_LOG=$PWD/$out/module.log:WARNING
if [ "$seconds" = merge ]; then
    # Python coverage and hit counts off: keep the committed corpus small (CI replays it).
    ATECC_FUZZ_PYCOV=0 "$out/abi_fuzz" -merge=1 -use_counters=0 -timeout=30 fuzz/corpus "$out/corpus"
    exit
fi
"$out/abi_fuzz" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -max_len=4096 \
    -artifact_prefix="$out/findings/" -print_final_stats=1 ${FUZZ_FLAGS:-} \
    "$out/corpus" fuzz/corpus 2>&1 | tee "$out/fuzz.log" | grep -E '^#[0-9]+.*(pulse|DONE)|FINDING|ERROR|stat::' || true
if grep -q Traceback "$out/module.log" 2>/dev/null; then
    echo "fuzz: a traceback reached the module's log ($out/module.log)" >&2
fi
if [ -n "$(ls -A "$out/findings")" ]; then
    echo "fuzz: findings in $out/findings:" >&2
    ls "$out/findings" >&2
    exit 1
fi
echo "fuzz: no findings"
