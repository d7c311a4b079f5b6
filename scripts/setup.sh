#!/usr/bin/env bash
# Set up everything the project needs on a Debian/Ubuntu machine; safe to run again.
#   - system packages: the PKCS#11 peers the tests and the demo drive (GnuTLS p11tool, OpenSC
#     pkcs11-tool, libp11's OpenSSL engine), SoftHSM2 for comparison, a C compiler, curl, and
#     PostgreSQL (the fleet registry's tests start throwaway clusters of their own)
#   - as root: the system user atecc-pg, which those clusters run as (PostgreSQL refuses root)
#   - a virtual environment in .venv with the project installed editable, compat mode (this builds the
#     cffi-embedded Cryptoki library cryptoki/libatecc_pkcs11.so)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gnutls-bin opensc libengine-pkcs11-openssl softhsm2 p11-kit gcc libc6-dev curl openssl
          postgresql)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$(id -u)" -eq 0 ] && ! id atecc-pg >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin atecc-pg
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
log=.venv/pip-install.log
pip_quiet() {
    # pip's own warnings are noise for a new user; keep them in a log, show it if pip fails.
    if ! .venv/bin/python -m pip "$@" > "$log" 2>&1; then
        cat "$log" >&2
        echo "setup: pip $* failed (log: $log)" >&2
        exit 1
    fi
}
pip_quiet install -q --upgrade pip setuptools wheel
echo "setup: installing the project (builds the Cryptoki library)"
# Compat mode puts a plain path in a .pth file instead of setuptools' import-hook finder, which
# every process that loads the module would otherwise import at start (~15 ms of pkcs11-tool's
# cold start). setuptools calls the mode transitional, so fall back to the default if it goes.
if ! .venv/bin/python -m pip install -q -e '.[test,dev]' --config-settings editable_mode=compat \
        > "$log" 2>&1; then
    pip_quiet install -q -e '.[test,dev]'
fi
echo "setup: module at $(.venv/bin/atecc module-path)"

# Python hosts the module cannot run in (another X.Y; the same X.Y without our dependencies),
# each with python-pkcs11: the tests check that they get an error and one line pointing at the
# broker, and that python-pkcs11 on the other version works through the broker. Skipped when no
# Python of another version is installed (pyenv's are looked for).
host_venv() {  # NAME PYTHON
    [ -x ".venv-hosts/$1/bin/python" ] && .venv-hosts/$1/bin/python -c "import pkcs11" 2>/dev/null \
        && return 0
    echo "setup: creating .venv-hosts/$1 ($("$2" --version)) with python-pkcs11"
    rm -rf ".venv-hosts/$1"
    "$2" -m venv ".venv-hosts/$1"
    if ! ".venv-hosts/$1/bin/python" -m pip install -q python-pkcs11 > "$log" 2>&1; then
        cat "$log" >&2
        echo "setup: python-pkcs11 for .venv-hosts/$1 failed (log: $log)" >&2
        exit 1
    fi
}
mine=$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
host_venv "py$mine-bare" "$(.venv/bin/python -c 'import sys; print(sys._base_executable)')"
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
for v in 3.12 3.13 3.11; do
    [ "$v" = "$mine" ] && continue
    other=$(ls -d "$pyenv_root"/versions/"$v".*/bin/python"$v" 2>/dev/null | sort -V | tail -1 || true)
    [ -z "$other" ] && other=$(command -v "python$v" | grep -v /shims/ || true)
    if [ -n "$other" ]; then
        host_venv "py$v" "$other"
        break
    fi
done
