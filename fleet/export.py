"""Certificates in the forms firmware needs: PEM, DER, and C arrays as ``xxd -i`` prints them.

Owns: reading a certificate (PEM or DER, or a CA directory meaning its ``ca.crt``) and rendering
it. The C form is byte-for-byte what ``xxd -i`` writes for the DER file -- ``unsigned char
NAME[] = {``, twelve ``0x..`` per line indented by two spaces, ``};`` and ``unsigned int NAME_len
= N;`` -- so firmware build scripts that used xxd can switch without diffs. The C array always
holds the DER (what mbedTLS/wolfSSL/cryptoauthlib parse), whatever form the input had.

Must not: export private keys. A device key never leaves its chip, and a server or CA key is
loaded from its 0600 file, not compiled into firmware.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleet import FleetError
from fleet.ca import CA_CERT_NAME

FORMATS = ("pem", "der", "c")
BYTES_PER_LINE = 12


def c_identifier(text: str) -> str:
    """A C identifier from a file name the way ``xxd -i`` makes one (``ca.crt`` → ``ca_crt``)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if not name:
        raise FleetError("empty C array name")
    if name[0].isdigit():
        name = "__" + name  # what xxd does; a C identifier cannot start with a digit
    return name


def c_array(data: bytes, name: str) -> str:
    """``xxd -i`` output for ``data`` under the array name ``name``."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise FleetError(f"{name!r} is not a C identifier")
    lines = [
        "  " + ", ".join(f"0x{b:02x}" for b in data[i : i + BYTES_PER_LINE])
        for i in range(0, len(data), BYTES_PER_LINE)
    ]
    body = ",\n".join(lines)
    return (
        f"unsigned char {name}[] = {{\n"
        + (body + "\n" if body else "")
        + f"}};\nunsigned int {name}_len = {len(data)};\n"
    )


def load_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """The certificates in a PEM file (one or more), a DER file, or a CA directory's ``ca.crt``."""
    source = Path(path)
    if source.is_dir():
        source = source / CA_CERT_NAME
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise FleetError(f"cannot read {source}: {exc.strerror}") from None
    if b"PRIVATE KEY-----" in raw:
        raise FleetError(f"{source} holds a private key; only certificates are exported")
    try:
        if b"-----BEGIN" in raw:
            return x509.load_pem_x509_certificates(raw)
        return [x509.load_der_x509_certificate(raw)]
    except ValueError as exc:
        raise FleetError(f"{source} is not a certificate in PEM or DER ({exc})") from None


def render(certs: list[x509.Certificate], fmt: str, *, name: str) -> bytes:
    """``certs`` in ``fmt``; PEM may hold a chain, DER and C exactly one certificate."""
    if fmt not in FORMATS:
        raise FleetError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")
    if fmt == "pem":
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    if len(certs) != 1:
        raise FleetError(f"the input holds {len(certs)} certificates; {fmt} takes exactly one")
    der = certs[0].public_bytes(serialization.Encoding.DER)
    if fmt == "der":
        return der
    return c_array(der, name).encode("ascii")


def default_name(source: str | os.PathLike[str]) -> str:
    """The array name ``xxd -i`` would use for ``source`` (a CA directory names its ``ca.crt``)."""
    path = Path(source)
    return c_identifier(CA_CERT_NAME if path.is_dir() else path.name)
