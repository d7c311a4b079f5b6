#!/usr/bin/env bash
# Print the path of libp11's OpenSSL pkcs11 engine (package libengine-pkcs11-openssl).
set -euo pipefail
enginesdir=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
for candidate in "$enginesdir/pkcs11.so" /usr/lib/*/engines-3/pkcs11.so /usr/lib/*/engines-1.1/pkcs11.so; do
    if [ -f "$candidate" ]; then echo "$candidate"; exit 0; fi
done
echo "find-pkcs11-engine: libp11's pkcs11.so engine not found (install libengine-pkcs11-openssl)" >&2
exit 1
