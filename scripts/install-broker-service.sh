#!/usr/bin/env bash
# Install (or with --remove, uninstall) `atecc broker` as a socket-activated systemd service.
#   scripts/install-broker-service.sh [--atecc PATH] [--root DIR] [--no-start] [--remove]
# Writes /etc/systemd/system/atecc-broker.{service,socket}, /etc/sysusers.d/atecc-broker.conf and
# /etc/tmpfiles.d/atecc-broker.conf from conf/systemd/; then creates the user atecc-broker and the
# group atecc-pkcs11 (systemd-sysusers), the socket directory (systemd-tmpfiles) and enables the
# socket. --atecc defaults to `command -v atecc`, else this tree's .venv/bin/atecc. --root DIR
# writes under DIR and starts nothing (packaging, tests); --no-start only writes the files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
conf="$here/../conf/systemd"
root="" atecc="" start=1 remove=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; start=0; shift ;;
        --atecc) atecc=$2; shift ;;
        --no-start) start=0 ;;
        --remove) remove=1 ;;
        *) echo "install-broker-service: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
units="$root/etc/systemd/system"
files=("$units/atecc-broker.service" "$units/atecc-broker.socket"
       "$root/etc/sysusers.d/atecc-broker.conf" "$root/etc/tmpfiles.d/atecc-broker.conf")
if [ "$remove" = 1 ]; then
    [ "$start" = 1 ] && systemctl disable --now atecc-broker.socket atecc-broker.service || true
    rm -f "${files[@]}"
    echo "removed the atecc-broker units (user, group and filestore are left as they are)"
    exit 0
fi
if [ -z "$atecc" ]; then
    atecc=$(command -v atecc || echo "$here/../.venv/bin/atecc")
fi
atecc=$(cd "$(dirname "$atecc")" && pwd)/$(basename "$atecc")
[ -x "$atecc" ] || { echo "install-broker-service: $atecc is not executable" >&2; exit 1; }
case "$atecc" in
    *'|'* | *' '*) echo "install-broker-service: unusable path $atecc" >&2; exit 1 ;;
esac
mkdir -p "$units" "$root/etc/sysusers.d" "$root/etc/tmpfiles.d"
sed "s|@ATECC@|$atecc|" "$conf/atecc-broker.service.in" > "${files[0]}"
cp "$conf/atecc-broker.socket" "${files[1]}"
cp "$conf/atecc-broker.sysusers.conf" "${files[2]}"
cp "$conf/atecc-broker.tmpfiles.conf" "${files[3]}"
echo "installed ${files[*]} (atecc: $atecc)"
if [ "$start" = 1 ]; then
    systemd-sysusers atecc-broker.conf
    systemd-tmpfiles --create atecc-broker.conf
    systemctl daemon-reload
    systemctl enable --now atecc-broker.socket
    echo "atecc-broker.socket is listening on /run/atecc-broker/pkcs11.sock"
fi
