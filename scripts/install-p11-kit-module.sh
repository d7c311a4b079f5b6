#!/usr/bin/env bash
# Install (or with --remove, uninstall) the p11-kit module file for the ATECC608 module.
#   scripts/install-p11-kit-module.sh [--system] [--remove] [--name NAME] [MODULE_PATH]
#   scripts/install-p11-kit-module.sh --broker [--socket PATH] [--system] [--name NAME]
# MODULE_PATH defaults to `atecc module-path`. With --broker the file names the broker's socket
# instead (`remote: unix:path=PATH`, default /run/atecc-broker/pkcs11.sock): applications then
# use the chip through `atecc broker` and load no Python. Without --system the file goes to
# ~/.config/pkcs11/modules/; as root it always goes to /etc/pkcs11/modules/, because p11-kit
# skips per-user configuration in programs running as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
system=0 remove=0 name=atecc608 module="" broker=0 socket=/run/atecc-broker/pkcs11.sock
while [ $# -gt 0 ]; do
    case "$1" in
        --system) system=1 ;;
        --remove) remove=1 ;;
        --name) name=$2; shift ;;
        --broker) broker=1 ;;
        --socket) socket=$2; shift ;;
        -*) echo "install-p11-kit-module: unknown option $1" >&2; exit 2 ;;
        *) module=$1 ;;
    esac
    shift
done
if [ "$system" = 1 ] || [ "$(id -u)" -eq 0 ]; then
    dir=/etc/pkcs11/modules
else
    dir=${XDG_CONFIG_HOME:-$HOME/.config}/pkcs11/modules
fi
file="$dir/$name.module"
if [ "$remove" = 1 ]; then
    rm -f "$file"
    echo "removed $file"
    exit 0
fi
mkdir -p "$dir"
if [ "$broker" = 1 ]; then
    case "$socket" in
        *'|'* | *$'\n'*) echo "install-p11-kit-module: unusable --socket path" >&2; exit 2 ;;
        /*) ;;
        *) echo "install-p11-kit-module: --socket needs an absolute path" >&2; exit 2 ;;
    esac
    sed "s|@SOCKET_PATH@|$socket|" "$here/../conf/p11-kit/atecc608-broker.module.in" > "$file.tmp"
    mv "$file.tmp" "$file"
    echo "installed $file (broker socket: $socket)"
    exit 0
fi
if [ -z "$module" ]; then
    atecc=$(command -v atecc || echo "$here/../.venv/bin/atecc")
    module=$("$atecc" module-path)
fi
sed "s|@MODULE_PATH@|$module|" "$here/../conf/p11-kit/atecc608.module.in" > "$file.tmp"
mv "$file.tmp" "$file"
echo "installed $file (module: $module)"
