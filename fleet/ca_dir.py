"""The CA directory on disk: creating it so that a crash never leaves it stuck, and loading it.

Owns: the layout, the CA key (EC P-256, PKCS#8 PEM, 0600) and self-signed certificate (PEM), and
the files the CA writes for operators (keys 0600, certificates 0644). Layout::

    ca.key            the CA's private key, 0600
    ca.crt            the CA's self-signed certificate
    registry.sqlite3  the device registry (default engine, :mod:`fleet.registry`)
    fleet.conf        optional: ``registry = postgresql://...``, 0600

Creating a CA is recoverable at every step:

* a new directory is built whole under a hidden temporary name beside it
  (``.<name>.ca-init.<pid>.<random>``) and renamed into place: a crash leaves either no CA or a
  complete one, and the next ``ca init`` removes temporary directories whose writer is gone;
* in an existing directory (which must not hold a ``ca.crt``) the key is written first and the
  certificate last (each atomically): the certificate's rename is the commit;
* so a directory with ``ca.key`` but no ``ca.crt`` is a CA whose creation stopped before its
  certificate existed -- nothing can have been signed with that key. ``ca init`` *finishes* it:
  it keeps that key and writes the certificate (no key is ever replaced or deleted). If the
  registry already holds certificates, ``ca.crt`` was lost rather than never written, and
  ``ca init`` refuses and says to restore it.

Must not: sign device or server certificates (``fleet.ca``) or hold SQL (``fleet.registry``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from atecc.fileio import atomic_write, read_limited
from fleet import FleetError

CA_KEY_NAME = "ca.key"
CA_CERT_NAME = "ca.crt"
#: Backdating of notBefore, so a peer whose clock is a little behind still accepts a fresh cert.
CLOCK_SKEW = timedelta(minutes=5)
#: PEM keys and certificates are a few kB; anything much larger is not one.
MAX_PEM_BYTES = 1 << 20
_INIT_MARK = ".ca-init."


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def check_days(days: int) -> None:
    if days < 1 or days > 100 * 366:
        raise FleetError(f"validity must be 1..36600 days, not {days}")


def key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


# --- files ---------------------------------------------------------------------------------------


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def read_pem(path: Path) -> bytes:
    try:
        return read_limited(path, max_bytes=MAX_PEM_BYTES)
    except OSError as exc:
        raise FleetError(f"cannot read {path}: {exc.strerror or exc}") from None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(read_pem(path), password=None)
    except (ValueError, TypeError) as exc:
        raise FleetError(f"cannot load the CA key {path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise FleetError(f"{path} is not an EC P-256 private key")
    return key


def load_ca_files(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """``ca.key`` and ``ca.crt`` of ``directory``, checked to belong together."""
    key_path, cert_path = directory / CA_KEY_NAME, directory / CA_CERT_NAME
    if key_path.is_file() and not cert_path.exists():
        raise FleetError(
            f"the CA in {directory} was not finished ({CA_KEY_NAME} without {CA_CERT_NAME}): "
            f"run 'atecc ca init --dir {directory} --subject ...' again to finish it"
        )
    for path in (key_path, cert_path):
        if not path.is_file():
            raise FleetError(
                f"{path} not found (create the CA with 'atecc ca init --dir {directory}')"
            )
    key = _load_key(key_path)
    try:
        cert = x509.load_pem_x509_certificate(read_pem(cert_path))
    except ValueError as exc:
        raise FleetError(f"cannot load the CA certificate {cert_path}: {exc}") from None
    if key.public_key() != cert.public_key():
        raise FleetError(f"{key_path} does not belong to {cert_path}")
    return key, cert


def load_ca_certificate(directory: Path) -> x509.Certificate:
    """Only ``ca.crt`` (a server needs no CA key)."""
    path = directory / CA_CERT_NAME
    if not path.is_file():
        raise FleetError(f"{path} not found (is {directory} a CA made by 'atecc ca init'?)")
    try:
        return x509.load_pem_x509_certificate(read_pem(path))
    except ValueError as exc:
        raise FleetError(f"cannot load the CA certificate {path}: {exc}") from None


def write_key(path: str | os.PathLike[str], key: ec.EllipticCurvePrivateKey) -> None:
    """Save a private key as unencrypted PKCS#8 PEM, mode 0600."""
    atomic_write(path, key_pem(key), mode=0o600)


def write_certificate(path: str | os.PathLike[str], cert: x509.Certificate) -> None:
    atomic_write(path, cert_pem(cert), mode=0o644)


def _load_pem_or_der(path: str | os.PathLike[str], pem: Any, der: Any, what: str) -> Any:
    raw = read_pem(Path(path))
    try:
        return pem(raw) if b"-----BEGIN" in raw else der(raw)
    except ValueError as exc:
        raise FleetError(f"{path} is not {what} ({exc})") from None


def load_csr(path: str | os.PathLike[str]) -> x509.CertificateSigningRequest:
    """A CSR from a PEM or DER file."""
    csr: x509.CertificateSigningRequest = _load_pem_or_der(
        path, x509.load_pem_x509_csr, x509.load_der_x509_csr, "a certificate request"
    )
    return csr


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """A certificate from a PEM or DER file."""
    cert: x509.Certificate = _load_pem_or_der(
        path, x509.load_pem_x509_certificate, x509.load_der_x509_certificate, "a certificate"
    )
    return cert


# --- creation ------------------------------------------------------------------------------------


def _self_signed(key: ec.EllipticCurvePrivateKey, name: x509.Name, days: int) -> x509.Certificate:
    start = now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def remove_stale_init_dirs(base: Path) -> int:
    """Remove half-built CA directories beside ``base`` whose creating process is gone."""
    prefix = f".{base.name}{_INIT_MARK}"
    removed = 0
    try:
        names = os.listdir(base.parent)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix) :].split(".", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        path = base.parent / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _registry_has_records(base: Path) -> bool:
    from fleet.registry import CONFIG_NAME, open_registry
    from fleet.registry.legacy import JSON_NAME
    from fleet.registry.sqlite import FILE_NAME

    if not any((base / name).exists() for name in (FILE_NAME, JSON_NAME, CONFIG_NAME)):
        return False
    with open_registry(base) as registry:
        return registry.count() > 0


def create_ca_files(
    directory: str | os.PathLike[str],
    name: x509.Name,
    *,
    days: int,
    config: tuple[str, bytes] | None = None,
) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate, bool]:
    """Create (or finish) the CA in ``directory``; see the module docstring.

    ``config`` is an extra ``(file name, contents)`` written 0600 before the certificate (the
    registry setting). Returns ``(directory, key, certificate, finished)`` where ``finished`` is
    True when an unfinished CA's key was kept and certified.
    """
    check_days(days)
    base = Path(directory)
    remove_stale_init_dirs(base)
    if not base.exists() and not base.is_symlink():
        return (*_create_new(base, name, days, config), False)
    if not base.is_dir():
        raise FleetError(f"{base} exists and is not a directory")
    key_path, cert_path = base / CA_KEY_NAME, base / CA_CERT_NAME
    if cert_path.exists() or cert_path.is_symlink():
        raise FleetError(f"{cert_path} already exists; not replacing a CA")
    finished = key_path.exists() or key_path.is_symlink()
    if finished:
        if not stat.S_ISREG(os.lstat(key_path).st_mode):
            raise FleetError(f"{key_path} is not a regular file")
        if _registry_has_records(base):
            raise FleetError(
                f"{cert_path} is missing but the registry in {base} holds certificates signed "
                f"by {key_path}: restore {CA_CERT_NAME} from a backup (not creating a new one)"
            )
        key = _load_key(key_path)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        atomic_write(key_path, key_pem(key), mode=0o600)
    cert = _self_signed(key, name, days)
    if config is not None:
        atomic_write(base / config[0], config[1], mode=0o600)
    atomic_write(cert_path, cert_pem(cert), mode=0o644)  # the commit
    return base, key, cert, finished


def _create_new(
    base: Path, name: x509.Name, days: int, config: tuple[str, bytes] | None
) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    parent = base.parent
    if not parent.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
    temp = parent / f".{base.name}{_INIT_MARK}{os.getpid()}.{os.urandom(4).hex()}"
    os.mkdir(temp, 0o700)
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _self_signed(key, name, days)
        atomic_write(temp / CA_KEY_NAME, key_pem(key), mode=0o600)
        if config is not None:
            atomic_write(temp / config[0], config[1], mode=0o600)
        atomic_write(temp / CA_CERT_NAME, cert_pem(cert), mode=0o644)
        os.chmod(temp, 0o755)
        _fsync_dir(temp)
        try:
            os.rename(temp, base)  # the commit: the CA appears whole or not at all
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FleetError(f"{base} appeared meanwhile; not replacing it") from None
            raise
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    _fsync_dir(parent)
    return base, key, cert
