"""The fleet's subcommands of ``atecc``: CA, CSRs, certificates on the token, exports, server.

Owns: their argument parsing and their output; the work is in :mod:`fleet.ca`,
:mod:`atecc.certs.csr`, :mod:`fleet.registry`, :mod:`fleet.export`, :mod:`fleet.server` and
``cryptoki.provision``. ``atecc`` finds :func:`add_subcommands` through the ``atecc.commands``
entry point (pyproject.toml) and calls it on its subparsers::

    atecc ca init --dir D --subject "/O=Example/CN=Device Root CA" [--days 3650]
    atecc ca server-cert --dir D --dns NAME [--dns NAME ...] [--ip IP ...] [--cn CN] [--days 365]
                         --out-key K --out-cert C
    atecc ca sign --dir D --csr F [--days 365] --out F
    atecc ca crl --dir D --out F [--days 30]
    atecc csr [--filestore DIR] [--slot N] [--key-slot K] [--cn CN] --out F
    atecc revoke --dir D (--serial HEX | --device-id ID) [--reason R]
    atecc cert-store --in F [--label L]
    atecc export --in F --format pem|der|c [--name NAME] --out F
    atecc serve --ca-dir D --cert C --key K [--host 127.0.0.1] [--port 8443] [--crl F]
                [--log-file F] [--handshake-timeout S] [--max-connections N]

``--slot N`` means the slot file ``<N>.conf``, as in every other ``atecc`` command; the chip's
key slot is ``--key-slot`` (default 0, the Trust&GO device key).

Handlers return an exit status and never raise: bad input or CA state prints one line
``atecc: error: ...`` on stderr and returns 2; a chip or I/O failure returns 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any

from atecc.fileio import atomic_write
from fleet import FleetError

PROG = "atecc"
EXIT_ERROR = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _error(message: str, status: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def _guarded(func: Handler) -> Handler:
    """Turn every failure into one ``atecc: error:`` line and an exit status."""

    @wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        from atecc.errors import AteccError

        try:
            return func(args)
        except FleetError as exc:
            return _error(str(exc), EXIT_USAGE)
        except (ValueError, TypeError) as exc:
            return _error(str(exc) or type(exc).__name__, EXIT_USAGE)
        except FileNotFoundError as exc:
            return _error(f"{exc.filename}: {exc.strerror}", EXIT_USAGE)
        except AteccError as exc:
            return _error(f"chip: {type(exc).__name__}: {exc}", EXIT_ERROR)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            return _error(f"{where}{exc.strerror or exc}", EXIT_ERROR)
        except Exception as exc:
            return _error(f"{type(exc).__name__}: {exc}", EXIT_ERROR)

    return wrapper


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# --- ca ------------------------------------------------------------------------------------------


@_guarded
def cmd_ca_init(args: argparse.Namespace) -> int:
    from fleet.ca import init_ca

    ca = init_ca(args.dir, args.subject, days=args.days)
    cert = ca.certificate
    print(f"created {ca.directory / 'ca.key'} (0600) and {ca.certificate_path}")
    print(f"subject {cert.subject.rfc4514_string()}, valid until {_date(cert.not_valid_after_utc)}")
    return 0


@_guarded
def cmd_ca_server_cert(args: argparse.Namespace) -> int:
    from fleet.ca import CertificateAuthority
    from fleet.ca_dir import write_certificate, write_key

    ca = CertificateAuthority.load(args.dir)
    key, cert = ca.issue_server_certificate(
        dns_names=args.dns or [], ip_addresses=args.ip or [], days=args.days, cn=args.cn
    )
    write_key(args.out_key, key)
    write_certificate(args.out_cert, cert)
    names = [*(args.dns or []), *(args.ip or [])]
    print(
        f"wrote {args.out_key} (0600) and {args.out_cert} for {', '.join(names)}, "
        f"valid until {_date(cert.not_valid_after_utc)}"
    )
    return 0


@_guarded
def cmd_ca_sign(args: argparse.Namespace) -> int:
    from fleet.ca import CertificateAuthority
    from fleet.ca_dir import load_csr, write_certificate
    from fleet.registry import format_serial
    from fleet.subjects import common_name

    with CertificateAuthority.load(args.dir) as ca:
        cert = ca.issue_device_certificate(load_csr(args.csr), days=args.days)
    write_certificate(args.out, cert)
    print(
        f"issued serial {format_serial(cert.serial_number)} to device "
        f"{common_name(cert.subject)}, valid until {_date(cert.not_valid_after_utc)}: {args.out}"
    )
    return 0


@_guarded
def cmd_ca_crl(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from fleet.ca import CertificateAuthority

    with CertificateAuthority.load(args.dir) as ca:
        crl = ca.build_crl(days=args.days)
    atomic_write(args.out, crl.public_bytes(serialization.Encoding.PEM), mode=0o644)
    from cryptography import x509

    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    next_update = crl.next_update_utc
    print(
        f"wrote CRL number {number} with {len(crl)} revoked certificate(s) to {args.out}, "
        f"next update {_date(next_update) if next_update else '-'}"
    )
    return 0


@_guarded
def cmd_revoke(args: argparse.Namespace) -> int:
    from fleet.ca_dir import load_ca_certificate
    from fleet.registry import open_registry, parse_serial
    from fleet.subjects import parse_reason

    reason = parse_reason(args.reason)
    directory = Path(args.dir)
    load_ca_certificate(directory)  # a CA directory, not just any
    serial = parse_serial(args.serial) if args.serial is not None else None
    with open_registry(directory) as registry:
        records = registry.revoke(serial=serial, device_id=args.device_id, reason=reason)
    for record in records:
        print(f"revoked serial {record.serial} (device {record.device_id}, reason {reason})")
    print(f"publish it: {PROG} ca crl --dir {directory} --out <crl file>")
    return 0


# --- csr -----------------------------------------------------------------------------------------


def _open_device(args: argparse.Namespace) -> Any:
    """The chip of ``--slot N`` (``<N>.conf``) or the first slot file in the filestore."""
    from atecc import slotfile

    directory = slotfile.filestore_dir(getattr(args, "filestore", None))
    path = slotfile.select_slot_file(directory, getattr(args, "slot", None))
    return slotfile.open_device(slotfile.parse_slot_file(path).interface)


@_guarded
def cmd_csr(args: argparse.Namespace) -> int:
    from atecc.certs.csr import build_csr, csr_pem

    if not 0 <= args.key_slot <= 15:
        raise FleetError(f"--key-slot must be 0..15, not {args.key_slot}")
    device = _open_device(args)
    try:
        csr = build_csr(device, common_name=args.cn, slot=args.key_slot)
    finally:
        device.close()
    atomic_write(args.out, csr_pem(csr), mode=0o644)
    from fleet.subjects import common_name

    print(
        f"wrote {args.out}: CN={common_name(csr.subject)}, key in chip slot {args.key_slot}, "
        "signed by the chip"
    )
    return 0


# --- cert-store ----------------------------------------------------------------------------------


@_guarded
def cmd_cert_store(args: argparse.Namespace) -> int:
    """Put an issued certificate on the token next to its key (same CKA_ID), through the
    PKCS#11 core, so every PKCS#11 client finds it there."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from atecc import slotfile
    from cryptoki.provision import store_certificate
    from fleet.ca_dir import load_certificate

    der = load_certificate(args.input).public_bytes(Encoding.DER)
    directory = slotfile.filestore_dir(getattr(args, "filestore", None))
    path = slotfile.select_slot_file(directory, getattr(args, "slot", None))
    stored = store_certificate(directory, int(path.stem), der, args.label)
    print(
        f"stored {args.input} as certificate {stored.label!r} in token slot {stored.slot_id}, "
        f"next to private key {stored.key_label!r} (CKA_ID {stored.key_id.hex()})"
    )
    return 0


# --- export --------------------------------------------------------------------------------------


@_guarded
def cmd_export(args: argparse.Namespace) -> int:
    from fleet.export import c_identifier, default_name, load_certificates, render

    name = c_identifier(args.name) if args.name else default_name(args.input)
    data = render(load_certificates(args.input), args.format, name=name)
    if args.out == "-":
        if args.format == "der":
            raise FleetError("DER is binary; give --out FILE")
        sys.stdout.write(data.decode("ascii"))
    else:
        atomic_write(args.out, data, mode=0o644)
    return 0


# --- serve ---------------------------------------------------------------------------------------


@_guarded
def cmd_serve(args: argparse.Namespace) -> int:
    from fleet.server import ServerConfig, run

    if not 0 <= args.port <= 65535:
        raise FleetError(f"--port must be 0..65535, not {args.port}")
    if args.handshake_timeout <= 0 or args.request_timeout <= 0 or args.max_connections < 1:
        raise FleetError(
            "--handshake-timeout, --request-timeout and --max-connections must be positive"
        )
    config = ServerConfig(
        ca_dir=Path(args.ca_dir),
        cert=Path(args.cert),
        key=Path(args.key),
        host=args.host,
        port=args.port,
        crl=Path(args.crl) if args.crl else None,
        handshake_timeout_s=args.handshake_timeout,
        request_timeout_s=args.request_timeout,
        registry_url=args.registry,
        max_connections=args.max_connections,
    )
    return run(config, log_path=Path(args.log_file) if args.log_file else None)


# --- parsers -------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_subcommands(subparsers: Any) -> None:
    """Register ``ca``, ``csr``, ``revoke``, ``export`` and ``serve`` on ``subparsers``."""
    ca = subparsers.add_parser("ca", help="device certificate authority (init, sign, CRL)")
    ca_commands = ca.add_subparsers(dest="ca_command", metavar="CA_COMMAND", required=True)

    init = ca_commands.add_parser("init", help="create a CA key (0600) and self-signed certificate")
    init.add_argument("--dir", required=True, help="CA directory (created if missing)")
    init.add_argument("--subject", required=True, help='OpenSSL-style, e.g. "/O=Example/CN=Root"')
    init.add_argument("--days", type=_positive_int, default=3650, help="validity (default 3650)")
    init.set_defaults(func=cmd_ca_init)

    server = ca_commands.add_parser("server-cert", help="TLS server key and certificate")
    server.add_argument("--dir", required=True, help="CA directory")
    server.add_argument("--dns", action="append", metavar="NAME", help="DNS name (repeatable)")
    server.add_argument("--ip", action="append", metavar="ADDR", help="IP address (repeatable)")
    server.add_argument("--cn", help="subject CN (default: the first name)")
    server.add_argument("--days", type=_positive_int, default=365, help="validity (default 365)")
    server.add_argument("--out-key", required=True, help="private key file to write (0600)")
    server.add_argument("--out-cert", required=True, help="certificate file to write")
    server.set_defaults(func=cmd_ca_server_cert)

    sign = ca_commands.add_parser("sign", help="issue a device certificate from a CSR")
    sign.add_argument("--dir", required=True, help="CA directory")
    sign.add_argument("--csr", required=True, help="the device's CSR (PEM or DER)")
    sign.add_argument("--days", type=_positive_int, default=365, help="validity (default 365)")
    sign.add_argument("--out", required=True, help="certificate file to write")
    sign.set_defaults(func=cmd_ca_sign)

    store = subparsers.add_parser(
        "cert-store", help="store an issued certificate on the token next to its key"
    )
    store.add_argument("--in", dest="input", required=True, help="certificate (PEM or DER)")
    store.add_argument("--label", default="device-tls", help="CKA_LABEL (default device-tls)")
    store.set_defaults(func=cmd_cert_store)

    crl = ca_commands.add_parser("crl", help="publish a CRL of the revoked devices")
    crl.add_argument("--dir", required=True, help="CA directory")
    crl.add_argument("--out", required=True, help="CRL file to write (PEM)")
    crl.add_argument("--days", type=_positive_int, default=30, help="until nextUpdate (default 30)")
    crl.set_defaults(func=cmd_ca_crl)

    csr = subparsers.add_parser("csr", help="certificate request signed by the chip's key")
    # SUPPRESS: do not reset a --filestore/--slot given before the command (see atecc/cli.py).
    csr.add_argument(
        "--filestore",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="slot-file directory (default: $ATECC_PKCS11_FILESTORE, ...)",
    )
    csr.add_argument(
        "--slot",
        metavar="N",
        type=int,
        default=argparse.SUPPRESS,
        help="slot file <N>.conf to use (default: the first one)",
    )
    csr.add_argument(
        "--key-slot",
        metavar="K",
        type=int,
        default=0,
        help="chip key slot (default 0, the device key)",
    )
    csr.add_argument("--cn", help="subject CN (default: the device ID derived from the serial)")
    csr.add_argument("--out", required=True, help="CSR file to write (PEM)")
    csr.set_defaults(func=cmd_csr)

    revoke = subparsers.add_parser("revoke", help="revoke a device certificate")
    revoke.add_argument("--dir", required=True, help="CA directory")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", metavar="HEX", help="certificate serial number")
    which.add_argument("--device-id", metavar="ID", help="every active certificate of a device")
    revoke.add_argument(
        "--reason",
        default="unspecified",
        help="RFC 5280 reason, e.g. keyCompromise (default unspecified)",
    )
    revoke.set_defaults(func=cmd_revoke)

    export = subparsers.add_parser("export", help="a certificate as PEM, DER or a C array")
    export.add_argument(
        "--in", dest="input", required=True, help="certificate (PEM/DER) or a CA directory"
    )
    export.add_argument("--format", required=True, choices=("pem", "der", "c"))
    export.add_argument("--name", help="C array name (default: from the input file, as xxd -i)")
    export.add_argument("--out", required=True, help="file to write, or - for stdout")
    export.set_defaults(func=cmd_export)

    serve = subparsers.add_parser("serve", help="reference mutual-TLS server")
    serve.add_argument("--ca-dir", required=True, help="CA directory (ca.crt, registry.json)")
    serve.add_argument("--cert", required=True, help="server certificate (PEM)")
    serve.add_argument("--key", required=True, help="server private key (PEM)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8443, help="port (default 8443; 0 = any)")
    serve.add_argument("--crl", help="CRL file to honour (re-read when it changes)")
    serve.add_argument("--log-file", help="append verdict lines here instead of stderr")
    serve.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds a client gets to finish the handshake (default 10)",
    )
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds an accepted client gets to send its request (default 10)",
    )
    serve.add_argument("--registry", metavar="URL", help="registry (default: the CA directory's)")
    serve.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="connections served at once (default 256)",
    )
    serve.set_defaults(func=cmd_serve)


def main(argv: list[str] | None = None) -> int:
    """``python -m fleet.cli ...``: these subcommands alone, without the rest of ``atecc``."""
    parser = argparse.ArgumentParser(prog=PROG, description="ATECC608 device PKI")
    add_subcommands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
