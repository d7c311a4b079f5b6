"""fleet.cli: every subcommand end to end on a temporary CA and an emulated chip, and the
error contract (one ``atecc: error:`` line, exit status 2, never a traceback)."""

from __future__ import annotations

import argparse
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from atecc.certs.csr import device_id_for_serial
from atecc.emulator.profiles import create_chip
from atecc.slotfile import EmulatorInterface, open_device
from fleet.cli import add_subcommands
from fleet.registry import open_registry


def atecc(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="atecc")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture
def filestore(tmp_path, monkeypatch):
    store = tmp_path / "filestore"
    store.mkdir()
    create_chip(store / "chip0.json", device="ATECC608-TNGTLS")
    (store / "0.conf").write_text(
        "interface = emulator,chip0.json\ndevice = ATECC608-TNGTLS\nlabel = 00ABC\n"
        "root_ca = chip0.root-ca.pem\n"
    )
    monkeypatch.delenv("ATECC_PKCS11_FILESTORE", raising=False)
    return store


@pytest.fixture
def ca_dir(tmp_path, capsys):
    directory = tmp_path / "ca"
    assert (
        atecc("ca", "init", "--dir", directory, "--subject", "/O=Example/CN=CLI CA", "--days", "30")
        == 0
    )
    capsys.readouterr()
    return directory


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("atecc: error: "), err
    assert "Traceback" not in err
    return err


def test_ca_init_output_and_files(tmp_path, capsys):
    assert atecc("ca", "init", "--dir", tmp_path / "ca", "--subject", "/CN=Root") == 0
    assert "created" in capsys.readouterr().out
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    assert atecc("ca", "init", "--dir", tmp_path / "ca", "--subject", "/CN=Root") == 2
    assert "already exists" in one_error_line(capsys)


def test_ca_init_bad_subject(tmp_path, capsys):
    assert atecc("ca", "init", "--dir", tmp_path / "ca", "--subject", "CN=Root") == 2
    one_error_line(capsys)
    assert not (tmp_path / "ca" / "ca.key").exists()


def test_server_cert(ca_dir, tmp_path, capsys):
    key, crt = tmp_path / "server.key", tmp_path / "server.crt"
    assert (
        atecc(
            "ca",
            "server-cert",
            "--dir",
            ca_dir,
            "--dns",
            "localhost",
            "--dns",
            "alt",
            "--ip",
            "127.0.0.1",
            "--out-key",
            key,
            "--out-cert",
            crt,
        )
        == 0
    )
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    assert cert.public_key() == private.public_key()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "alt"]
    assert (
        atecc(
            "ca",
            "server-cert",
            "--dir",
            ca_dir,
            "--ip",
            "nope",
            "--out-key",
            key,
            "--out-cert",
            crt,
        )
        == 2
    )
    one_error_line(capsys)
    assert (
        atecc(
            "ca",
            "server-cert",
            "--dir",
            tmp_path / "no-ca",
            "--dns",
            "x",
            "--out-key",
            key,
            "--out-cert",
            crt,
        )
        == 2
    )
    assert "atecc ca init" in one_error_line(capsys)


def test_csr_sign_revoke_crl_export(ca_dir, filestore, tmp_path, capsys):
    csr_path, crt = tmp_path / "device.csr", tmp_path / "device.crt"
    assert atecc("csr", "--filestore", filestore, "--out", csr_path) == 0
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid
    device = open_device(EmulatorInterface(filestore / "chip0.json"))
    try:
        chip_key, serial = device.get_public_key(0), device.serial_number()
    finally:
        device.close()
    device_id = device_id_for_serial(serial)
    assert csr.subject.rfc4514_string() == f"CN={device_id}"

    assert atecc("ca", "sign", "--dir", ca_dir, "--csr", csr_path, "--days", "9", "--out", crt) == 0
    out = capsys.readouterr().out
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    assert (
        cert.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        == b"\x04" + chip_key
    )
    assert device_id in out and f"{cert.serial_number:X}" in out

    assert (
        atecc(
            "revoke", "--dir", ca_dir, "--device-id", device_id, "--reason", "cessationOfOperation"
        )
        == 0
    )
    with open_registry(ca_dir) as registry:
        (record,) = registry.records()
    assert (record.status, record.reason) == ("revoked", "cessationOfOperation")
    crl_path = tmp_path / "crl.pem"
    assert atecc("ca", "crl", "--dir", ca_dir, "--out", crl_path, "--days", "3") == 0
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None

    header = tmp_path / "device.h"
    assert (
        atecc("export", "--in", crt, "--format", "c", "--name", "device_cert", "--out", header) == 0
    )
    text = header.read_text()
    assert text.startswith("unsigned char device_cert[] = {\n")
    assert (
        f"unsigned int device_cert_len = {len(cert.public_bytes(serialization.Encoding.DER))};"
        in text
    )
    der = tmp_path / "device.der"
    assert atecc("export", "--in", crt, "--format", "der", "--out", der) == 0
    assert x509.load_der_x509_certificate(der.read_bytes()) == cert
    assert atecc("export", "--in", ca_dir, "--format", "pem", "--out", "-") == 0
    assert "BEGIN CERTIFICATE" in capsys.readouterr().out


def test_csr_with_cn_slot_file_and_filestore_from_env(filestore, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    out = tmp_path / "c.csr"
    assert atecc("csr", "--slot", "0", "--cn", "KE CLIENT", "--out", out) == 0
    assert x509.load_pem_x509_csr(out.read_bytes()).subject.rfc4514_string() == "CN=KE CLIENT"
    assert atecc("csr", "--slot", "7", "--out", out) == 2
    assert "no slot file" in one_error_line(capsys)
    assert atecc("csr", "--key-slot", "16", "--out", out) == 2
    one_error_line(capsys)
    assert atecc("csr", "--filestore", tmp_path / "missing", "--out", out) == 2
    assert "does not exist" in one_error_line(capsys)


def test_sign_rejects_bad_csr(ca_dir, tmp_path, capsys):
    junk = tmp_path / "junk.csr"
    junk.write_text(
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    )
    assert atecc("ca", "sign", "--dir", ca_dir, "--csr", junk, "--out", tmp_path / "x.crt") == 2
    one_error_line(capsys)
    assert (
        atecc(
            "ca",
            "sign",
            "--dir",
            ca_dir,
            "--csr",
            tmp_path / "none.csr",
            "--out",
            tmp_path / "x.crt",
        )
        == 2
    )
    one_error_line(capsys)
    assert not (tmp_path / "x.crt").exists()


def test_revoke_errors(ca_dir, tmp_path, capsys):
    assert atecc("revoke", "--dir", ca_dir, "--serial", "0BAD") == 2
    assert "no certificate" in one_error_line(capsys)
    assert atecc("revoke", "--dir", ca_dir, "--serial", "zz") == 2
    one_error_line(capsys)
    assert atecc("revoke", "--dir", ca_dir, "--device-id", "x", "--reason", "bored") == 2
    assert "reason" in one_error_line(capsys)
    assert atecc("revoke", "--dir", tmp_path, "--device-id", "x") == 2
    one_error_line(capsys)


def test_serve_rejects_bad_setup(ca_dir, tmp_path, capsys):
    assert (
        atecc(
            "serve",
            "--ca-dir",
            ca_dir,
            "--cert",
            tmp_path / "no.crt",
            "--key",
            tmp_path / "no.key",
            "--port",
            "0",
        )
        == 2
    )
    one_error_line(capsys)
    assert atecc("serve", "--ca-dir", tmp_path, "--cert", "a", "--key", "b") == 2
    one_error_line(capsys)


# --- what a fleet operator expects (issue 15, point 4) ------------------------------------------


def _issue(ca_dir, tmp_path, name, key=None):
    from fleet_helpers import software_csr

    csr_path = tmp_path / f"{name}.csr"
    csr_path.write_bytes(software_csr(name, key).public_bytes(serialization.Encoding.PEM))
    crt = tmp_path / f"{name}.crt"
    status = atecc("ca", "sign", "--dir", ca_dir, "--csr", csr_path, "--days", "5", "--out", crt)
    return status, crt


def _json(capsys):
    import json

    return json.loads(capsys.readouterr().out)


def test_ca_list_and_show_by_serial_device_id_and_certificate_file(ca_dir, tmp_path, capsys):
    _issue(ca_dir, tmp_path, "dev-a")
    _, b = _issue(ca_dir, tmp_path, "dev-b")
    serial_b = f"{x509.load_pem_x509_certificate(b.read_bytes()).serial_number:X}"
    capsys.readouterr()
    assert atecc("ca", "revoke", "--dir", ca_dir, "--serial", serial_b, "--json") == 0
    assert [r["device_id"] for r in _json(capsys)["revoked"]] == ["dev-b"]

    assert atecc("ca", "list", "--dir", ca_dir, "--json") == 0
    listing = _json(capsys)
    assert listing["total"] == 2
    assert {(r["device_id"], r["status"]) for r in listing["records"]} == {
        ("dev-a", "active"),
        ("dev-b", "revoked"),
    }
    assert atecc("ca", "list", "--dir", ca_dir, "--status", "revoked") == 0
    out = capsys.readouterr().out
    assert "dev-b" in out and "dev-a" not in out and "1 of 1 shown" in out

    for how in (["--serial", serial_b], ["--device-id", "dev-b"], ["--cert", b]):
        assert atecc("ca", "show", "--dir", ca_dir, *how, "--json") == 0
        (record,) = _json(capsys)["records"]
        assert record["device_id"] == "dev-b" and record["status"] == "revoked"
        assert record["serial"].lstrip("0") == serial_b.lstrip("0")
        assert record["certificate"] == b.read_text()
    assert atecc("ca", "show", "--dir", ca_dir, "--device-id", "dev-a") == 0
    assert "status      active" in capsys.readouterr().out
    assert atecc("ca", "show", "--dir", ca_dir, "--device-id", "nobody") == 2
    assert "no certificate" in one_error_line(capsys)


def test_revoke_is_under_ca_and_keeps_its_old_spelling(ca_dir, tmp_path, capsys):
    _issue(ca_dir, tmp_path, "dev-1")
    _issue(ca_dir, tmp_path, "dev-2")
    assert atecc("ca", "revoke", "--dir", ca_dir, "--device-id", "dev-1") == 0
    assert atecc("revoke", "--dir", ca_dir, "--device-id", "dev-2") == 0
    capsys.readouterr()
    assert atecc("ca", "list", "--dir", ca_dir, "--status", "revoked", "--json") == 0
    assert _json(capsys)["total"] == 2


def test_a_key_revoked_for_key_compromise_is_not_certified_again_without_force(
    ca_dir, tmp_path, capsys
):
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    assert _issue(ca_dir, tmp_path, "dev-k", key)[0] == 0
    assert (
        atecc("ca", "revoke", "--dir", ca_dir, "--device-id", "dev-k", "--reason", "keyCompromise")
        == 0
    )
    capsys.readouterr()
    (tmp_path / "dev-k.crt").unlink()
    status, crt = _issue(ca_dir, tmp_path, "dev-k", key)
    assert status == 2 and not crt.exists()
    assert "keyCompromise" in one_error_line(capsys)
    # A key revoked for another reason may be certified again; a compromised one only by force.
    csr = tmp_path / "dev-k.csr"
    assert atecc("ca", "sign", "--dir", ca_dir, "--csr", csr, "--force", "--out", crt) == 0
    with open_registry(ca_dir) as registry:
        assert registry.count() == 2


def test_every_fleet_command_answers_json(ca_dir, filestore, tmp_path, capsys):
    """--json on each command (serve excepted: it logs) gives one JSON object on stdout."""
    _, crt = _issue(ca_dir, tmp_path, "dev-j")
    capsys.readouterr()
    runs = [
        ["ca", "init", "--dir", tmp_path / "ca2", "--subject", "/CN=Two"],
        [
            "ca",
            "server-cert",
            "--dir",
            ca_dir,
            "--dns",
            "localhost",
            "--out-key",
            tmp_path / "s.key",
            "--out-cert",
            tmp_path / "s.crt",
        ],
        [
            "ca",
            "sign",
            "--dir",
            ca_dir,
            "--csr",
            tmp_path / "dev-j.csr",
            "--out",
            tmp_path / "j2.crt",
        ],
        ["ca", "crl", "--dir", ca_dir, "--out", tmp_path / "crl.pem"],
        ["ca", "list", "--dir", ca_dir],
        ["ca", "show", "--dir", ca_dir, "--device-id", "dev-j"],
        ["ca", "revoke", "--dir", ca_dir, "--device-id", "dev-j"],
        ["csr", "--filestore", filestore, "--out", tmp_path / "chip.csr"],
        ["export", "--in", crt, "--format", "c", "--out", tmp_path / "j.h"],
        ["engine-conf", "--out", tmp_path / "engine.cnf", "--module", "/m.so", "--engine", "/e.so"],
    ]
    for argv in runs:
        assert atecc(*argv, "--json") == 0, argv
        assert isinstance(_json(capsys), dict), argv


def test_out_dash_is_stdout_and_never_mixes_with_json(ca_dir, tmp_path, capsys):
    from fleet_helpers import software_csr

    csr_path = tmp_path / "x.csr"
    csr_path.write_bytes(software_csr("dev-x").public_bytes(serialization.Encoding.PEM))
    assert atecc("ca", "sign", "--dir", ca_dir, "--csr", csr_path, "--out", "-") == 0
    captured = capsys.readouterr()
    x509.load_pem_x509_certificate(captured.out.encode())  # stdout is exactly the certificate
    assert "issued serial" in captured.err
    assert atecc("ca", "crl", "--dir", ca_dir, "--out", "-", "--json") == 2
    assert "both write to stdout" in one_error_line(capsys)


def test_an_existing_fifo_device_or_symlink_out_is_written_in_place(ca_dir, tmp_path):
    """--out naming a FIFO, a character device or a symlink writes through it; the path is
    never replaced by a regular file (as root, --out /dev/null used to replace /dev/null)."""
    import os
    import threading

    # A FIFO, read by a thread.
    fifo = tmp_path / "crl.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert atecc("ca", "crl", "--dir", ca_dir, "--out", fifo) == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    x509.load_pem_x509_crl(received[0])

    # A character device: a private null device (1, 3), so the system's is never at stake.
    if os.geteuid() == 0:
        null = tmp_path / "null"
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        assert atecc("ca", "crl", "--dir", ca_dir, "--out", null) == 0
        assert stat.S_ISCHR(os.lstat(null).st_mode)

    # A symlink to a regular file: the link stays, its target gets the CRL.
    target = tmp_path / "real.pem"
    target.write_text("old")
    link = tmp_path / "link.pem"
    link.symlink_to(target)
    assert atecc("ca", "crl", "--dir", ca_dir, "--out", link) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    x509.load_pem_x509_crl(target.read_bytes())

    # A private key written through a symlink is made 0600 first.
    key_target = tmp_path / "server.key.real"
    key_target.write_text("")
    key_target.chmod(0o644)
    (tmp_path / "server.key").symlink_to(key_target)
    assert (
        atecc(
            "ca",
            "server-cert",
            "--dir",
            ca_dir,
            "--dns",
            "localhost",
            "--out-key",
            tmp_path / "server.key",
            "--out-cert",
            tmp_path / "server.crt",
        )
        == 0
    )
    assert stat.S_IMODE(key_target.stat().st_mode) == 0o600
