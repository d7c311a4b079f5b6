"""fleet.export: PEM, DER and xxd-compatible C arrays that compile and hold the DER bytes."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleet import FleetError
from fleet.ca import init_ca
from fleet.export import c_array, c_identifier, default_name, load_certificates, render


@pytest.fixture
def ca(tmp_path):
    return init_ca(tmp_path / "ca", "/O=Example/CN=Export CA", days=3)


def der_of(ca) -> bytes:
    return ca.certificate.public_bytes(serialization.Encoding.DER)


def parse_c_array(text: str) -> tuple[str, bytes, int]:
    match = re.fullmatch(
        r"unsigned char (\w+)\[\] = \{\n(.*?)\};\nunsigned int (\w+)_len = (\d+);\n", text, re.S
    )
    assert match, text
    assert match.group(3) == match.group(1)
    data = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", match.group(2)))
    return match.group(1), data, int(match.group(4))


def test_c_array_layout_is_xxd_i():
    text = c_array(bytes(range(30)), "blob")
    lines = text.splitlines()
    assert lines[0] == "unsigned char blob[] = {"
    assert lines[1] == "  " + ", ".join(f"0x{b:02x}" for b in range(12)) + ","
    assert lines[2] == "  " + ", ".join(f"0x{b:02x}" for b in range(12, 24)) + ","
    assert lines[3] == "  " + ", ".join(f"0x{b:02x}" for b in range(24, 30))
    assert lines[4:] == ["};", "unsigned int blob_len = 30;"]
    assert c_array(b"", "e") == "unsigned char e[] = {\n};\nunsigned int e_len = 0;\n"
    # Exactly 12 bytes: one full line without a trailing comma.
    assert c_array(bytes(12), "t").splitlines()[1].endswith("0x00")


def test_c_array_identical_to_xxd(ca, tmp_path):
    xxd = shutil.which("xxd")
    if xxd is None:
        pytest.skip("xxd not installed")
    der_path = tmp_path / "ca.der"
    der_path.write_bytes(der_of(ca))
    expected = subprocess.run(
        [xxd, "-i", der_path.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert c_array(der_of(ca), "ca_der") == expected


def test_c_array_compiles_and_holds_the_der(ca, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    der = der_of(ca)
    (tmp_path / "cert.h").write_bytes(render(load_certificates(ca.directory), "c", name="ca_cert"))
    (tmp_path / "dump.c").write_text(
        '#include <stdio.h>\n#include "cert.h"\n'
        "int main(void) {\n"
        "  return fwrite(ca_cert, 1, ca_cert_len, stdout) == ca_cert_len ? 0 : 1;\n"
        "}\n"
    )
    subprocess.run(
        [cc, "-Wall", "-Werror", "-c", "dump.c", "-o", "dump.o"],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    subprocess.run([cc, "dump.o", "-o", "dump"], cwd=tmp_path, check=True, timeout=60)
    out = subprocess.run([str(tmp_path / "dump")], capture_output=True, check=True, timeout=30)
    assert out.stdout == der
    name, data, length = parse_c_array((tmp_path / "cert.h").read_text())
    assert (name, data, length) == ("ca_cert", der, len(der))


def test_pem_and_der_round_trip(ca, tmp_path):
    certs = load_certificates(ca.directory / "ca.crt")
    der = render(certs, "der", name="x")
    assert x509.load_der_x509_certificate(der) == ca.certificate
    pem = render(certs, "pem", name="x")
    assert x509.load_pem_x509_certificate(pem) == ca.certificate
    (tmp_path / "in.der").write_bytes(der)
    assert load_certificates(tmp_path / "in.der") == [ca.certificate]


def test_chains_only_in_pem(ca, tmp_path):
    pem = ca.certificate.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "chain.pem").write_bytes(pem + pem)
    certs = load_certificates(tmp_path / "chain.pem")
    assert render(certs, "pem", name="x") == pem + pem
    with pytest.raises(FleetError, match="exactly one"):
        render(certs, "c", name="x")


def test_refuses_private_keys_and_garbage(ca, tmp_path):
    with pytest.raises(FleetError, match="private key"):
        load_certificates(ca.directory / "ca.key")
    (tmp_path / "junk").write_bytes(b"\x00\x01junk")
    with pytest.raises(FleetError, match="not a certificate"):
        load_certificates(tmp_path / "junk")
    with pytest.raises(FleetError):
        load_certificates(tmp_path / "missing.pem")
    with pytest.raises(FleetError):
        render([ca.certificate], "hex", name="x")
    with pytest.raises(FleetError):
        c_array(b"", "not an identifier")


def test_names_like_xxd(tmp_path):
    assert c_identifier("device-cert.pem") == "device_cert_pem"
    assert c_identifier("0.crt") == "__0_crt"
    assert default_name(tmp_path / "signer.der") == "signer_der"
    assert default_name(tmp_path) == "ca_crt"  # a CA directory exports its ca.crt
