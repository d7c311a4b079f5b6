#!/usr/bin/env bash
# First command of the README: set everything up, then run the main job on an emulated
# Trust&GO chip (p11tool listing, CSR through the OpenSSL engine, mutual-TLS handshake).
# Safe to run again: the demo's chip and files live in ./demo and are made afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

rm -rf demo
mkdir -p demo
export ATECC_PKCS11_FILESTORE="$PWD/demo/filestore"
echo
echo "==> atecc emulator init --device ATECC608-TNGTLS --filestore demo/filestore"
.venv/bin/atecc emulator init --device ATECC608-TNGTLS --filestore "$ATECC_PKCS11_FILESTORE"
echo
echo "==> atecc info"
.venv/bin/atecc info
PATH="$PWD/.venv/bin:$PATH" bash scripts/mtls-demo.sh demo/work "$(.venv/bin/atecc module-path)"
