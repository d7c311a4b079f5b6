#!/usr/bin/env bash
# The main job: a device key that never leaves the chip does a mutual-TLS handshake.
#
#   scripts/mtls-demo.sh WORKDIR MODULE_PATH [KEY_URI]
#
# With MTLS_DEMO_PROVIDER_CONF set to an OpenSSL configuration file that loads the OpenSSL 3
# pkcs11-provider (README, "OpenSSL 3 provider"), steps 2 and 5 use the provider instead of the
# engine: `-key <pkcs11 URI>` with OPENSSL_CONF set to that file, no `-engine`.
#
# Steps (each printed as it runs):
#   1. list the token's objects with p11tool
#   2. make a CSR with the device key through the OpenSSL pkcs11 engine (the tutorial's command)
#      or the provider
#   3. create a local CA with plain OpenSSL and issue the device certificate from the CSR
#   4. create a server key and certificate signed by the same CA
#   5. run `openssl s_server -Verify 2 -verify_return_error` on 127.0.0.1 and connect with
#      `openssl s_client -engine pkcs11 -keyform engine -key <pkcs11 URI>` (with the provider:
#      `openssl s_client -key <pkcs11 URI>`); check that the handshake completed and that the
#      server saw the device certificate
#
# Loopback only; every process it starts is stopped on exit; bounded by timeouts. Safe to rerun:
# WORKDIR's CA and certificates are made afresh each time. The engine (or provider) is configured
# only for the commands that use the token (OPENSSL_CONF scoped per command): loading the engine
# globally breaks OpenSSL's own software EC keys on Debian 12's OpenSSL/libp11 pair.
set -euo pipefail

workdir=${1:?usage: mtls-demo.sh WORKDIR MODULE_PATH [KEY_URI]}
module=${2:?usage: mtls-demo.sh WORKDIR MODULE_PATH [KEY_URI]}
key_uri=${3:-"pkcs11:token=00ABC;object=device;type=private"}
here=$(cd "$(dirname "$0")" && pwd)
provider_conf=${MTLS_DEMO_PROVIDER_CONF:-}
if [ -n "$provider_conf" ]; then
    [ -f "$provider_conf" ] || { echo "mtls-demo: no file $provider_conf" >&2; exit 1; }
    provider_conf=$(cd "$(dirname "$provider_conf")" && pwd)/$(basename "$provider_conf")
fi

mkdir -p "$workdir"
cd "$workdir"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ -n "$provider_conf" ]; then
    via="the pkcs11-provider"
    key_args=(-key "$key_uri")
    with_token() { OPENSSL_CONF="$provider_conf" "$@"; }
else
    engine_so=$("$here/find-pkcs11-engine.sh")
    sed -e "s|@ENGINE_PATH@|$engine_so|" -e "s|@MODULE_PATH@|$module|" \
        "$here/../fleet/openssl-pkcs11-engine.cnf.in" > engine.cnf
    via="the pkcs11 engine"
    key_args=(-engine pkcs11 -keyform engine -key "$key_uri")
    with_token() { OPENSSL_CONF="$PWD/engine.cnf" "$@"; }
fi

step "p11tool --provider $module --list-all"
p11tool --provider "$module" --list-all ${P11TOOL_URL:+"$P11TOOL_URL"}

step "CSR signed by the device key through $via: openssl req ${key_args[*]}"
rm -f client_csr.csr
with_token openssl req "${key_args[@]}" -new -out client_csr.csr -subj "/CN=KE CLIENT"
openssl req -in client_csr.csr -noout -verify

step "Local CA issues the device certificate"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=Demo Device CA" -out ca.crt \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
cat > client.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF
openssl x509 -req -in client_csr.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -sha256 -extfile client.ext -out client.crt 2>/dev/null
openssl verify -CAfile ca.crt client.crt

step "Server key and certificate from the same CA"
openssl ecparam -name prime256v1 -genkey -noout -out server.key
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
cat > server.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -sha256 \
    -extfile server.ext -out server.crt 2>/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "openssl s_server -accept 127.0.0.1:$port -Verify 2 -verify_return_error"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
    exec 3>&- 2>/dev/null || true
    rm -f server.stdin
}
trap cleanup EXIT
# s_server quits when its stdin hits EOF, so its stdin is a FIFO that we hold open on fd 3
# until we stop it; `timeout` bounds it even if this script is killed.
rm -f server.stdin
mkfifo server.stdin
timeout 60 openssl s_server -accept "127.0.0.1:$port" -cert server.crt -key server.key \
    -CAfile ca.crt -Verify 2 -verify_return_error < server.stdin > server.log 2>&1 &
server_pid=$!
exec 3> server.stdin
for _ in $(seq 50); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" \
        2>/dev/null && break
    sleep 0.1
done

step "openssl s_client ${key_args[*]} -cert client.crt (through $via)"
(echo "hello from the device"; sleep 1) | with_token timeout 30 openssl s_client "${key_args[@]}" \
    -cert client.crt -CAfile ca.crt \
    -connect "127.0.0.1:$port" -servername localhost -verify_return_error -brief \
    > client.log 2>&1 || { cat client.log; echo "mtls-demo: s_client failed" >&2; exit 1; }
sleep 0.5
cleanup
cat client.log
step "What the server saw"
# s_server prints the client certificate it verified; compare it with the one we issued.
sed -n '/^Client certificate/,/^-----END CERTIFICATE-----/p' server.log | sed 1d > seen.crt
grep -E "^depth=|verify return" server.log || true
if [ -s seen.crt ] \
   && [ "$(openssl x509 -in seen.crt -noout -fingerprint -sha256)" = \
        "$(openssl x509 -in client.crt -noout -fingerprint -sha256)" ] \
   && grep -q "hello from the device" server.log; then
    echo "server saw: $(openssl x509 -in seen.crt -noout -subject -issuer | tr '\n' ' ')"
    echo "mtls-demo: OK: handshake completed; the server verified the device certificate"
else
    echo "mtls-demo: FAILED: the server did not report the device certificate" >&2
    exit 1
fi
