"""fleet.ca_dir: creating a CA is recoverable at every step; a key that certified anything is
never replaced; temporary files and directories of crashed writers are cleaned up."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fleet_helpers import software_csr

from atecc import fileio
from fleet import FleetError
from fleet.ca import CertificateAuthority, init_ca
from fleet.ca_dir import create_ca_files
from fleet.subjects import parse_subject


def _crash_at(step_number: int, work) -> bool:
    """Run ``work`` in a forked child that dies (os._exit, no cleanup) before the
    ``step_number``-th step of any atomic write or directory rename. True if it died."""
    pid = os.fork()
    if pid == 0:  # child
        seen = [0]

        def hook(step: str) -> None:
            seen[0] += 1
            if seen[0] == step_number:
                os._exit(77)

        fileio.crash_hook = hook
        try:
            work()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 77), code
    return code == 77


def _key_bytes(directory) -> bytes:
    return (directory / "ca.key").read_bytes()


def test_a_ca_with_a_key_but_no_certificate_is_finished_by_ca_init(tmp_path):
    """The state a crash between writing ca.key and ca.crt left: ca init finishes the CA with the
    key that is there (it never certified anything), instead of refusing forever."""
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (ca_dir / "ca.key").write_bytes(pem)
    (ca_dir / "ca.key").chmod(0o600)
    with pytest.raises(FleetError, match="not finished"):
        CertificateAuthority.load(ca_dir)
    with init_ca(ca_dir, "/CN=Finished CA", days=5) as ca:
        assert _key_bytes(ca_dir) == pem  # the key was kept, not replaced
        assert ca.certificate.public_key() == key.public_key()
        ca.issue_device_certificate(software_csr("dev"), days=1)
    with pytest.raises(FleetError, match="already exists"):
        init_ca(ca_dir, "/CN=Again", days=5)
    assert _key_bytes(ca_dir) == pem


def test_a_lost_certificate_of_a_ca_that_issued_is_not_replaced(tmp_path):
    ca_dir = tmp_path / "ca"
    with init_ca(ca_dir, "/CN=Busy CA", days=5) as ca:
        ca.issue_device_certificate(software_csr("dev"), days=1)
    pem = _key_bytes(ca_dir)
    (ca_dir / "ca.crt").unlink()
    with pytest.raises(FleetError, match=r"restore ca\.crt from a backup"):
        init_ca(ca_dir, "/CN=Busy CA", days=5)
    assert _key_bytes(ca_dir) == pem
    assert not (ca_dir / "ca.crt").exists()


@pytest.mark.parametrize("existing_dir", [False, True], ids=["new-dir", "existing-dir"])
def test_ca_creation_killed_at_every_step_is_recovered_by_ca_init(tmp_path, existing_dir):
    """Kill `ca init` before each step of its writes in turn; every time, the next ca init ends
    with a working CA, keeps any key it finds, and leaves no temporary file or directory."""
    name = parse_subject("/CN=Crash CA")
    step = 1
    while True:
        ca_dir = tmp_path / f"ca{step}"
        if existing_dir:
            ca_dir.mkdir()
        died = _crash_at(step, lambda d=ca_dir: create_ca_files(d, name, days=5))
        if not died:
            break
        left_key = _key_bytes(ca_dir) if (ca_dir / "ca.key").exists() else None
        if not existing_dir:
            assert not ca_dir.exists() or (ca_dir / "ca.crt").exists()  # whole or nothing
        if (ca_dir / "ca.crt").exists():
            CertificateAuthority.load(ca_dir).close()  # a complete CA already
        else:
            with init_ca(ca_dir, "/CN=Crash CA", days=5) as ca:
                if left_key is not None:
                    assert _key_bytes(ca_dir) == left_key
                assert ca.certificate.public_key() == ca.key.public_key()
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
        leftovers += [p.name for p in ca_dir.iterdir() if p.name.startswith(".")]
        assert leftovers == [], leftovers
        step += 1
    assert step > 5  # the creation has at least key write, certificate write and commit


def test_temporary_files_of_a_crashed_fleet_write_are_removed_by_the_next_one(tmp_path):
    """`atecc ca crl --out F` killed after creating its temporary file leaves it behind; the next
    `ca crl --out F` removes it (its writer is gone) and writes F whole, 0644."""
    from fleet.cli import main

    ca_dir = tmp_path / "ca"
    init_ca(ca_dir, "/CN=CA", days=5).close()
    out = tmp_path / "crl.pem"
    argv = ["ca", "crl", "--dir", str(ca_dir), "--out", str(out)]
    assert _crash_at(3, lambda: main(argv))  # killed before the temporary file's fsync
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".crl.pem.")]) == 1
    assert not out.exists()
    assert main(argv) == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
