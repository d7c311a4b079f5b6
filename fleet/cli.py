"""The fleet's subcommands of ``atecc``: their arguments, and one error line per failure.

Owns: argument parsing and the error contract (a failure prints one ``atecc: error: ...`` line
on stderr and returns 2 for bad input or state, 1 for a chip or I/O failure; never a traceback).
The work is in :mod:`fleet.commands`. ``atecc`` finds :func:`add_subcommands` through the
``atecc.commands`` entry point (pyproject.toml) and calls it on its subparsers::

    atecc ca init --dir D --subject "/O=Example/CN=Device Root CA" [--days 3650] [--registry URL]
    atecc ca server-cert --dir D --dns NAME [--dns NAME ...] [--ip IP ...] [--cn CN] [--days 365]
                         --out-key K --out-cert C
    atecc ca sign --dir D --csr F [--days 365] [--force] --out F
    atecc ca revoke --dir D (--serial HEX | --device-id ID | --cert F) [--reason R]  (= revoke)
    atecc ca crl --dir D --out F [--days 30]
    atecc ca list --dir D [--status active|revoked] [--limit N] [--offset N]
    atecc ca show --dir D (--serial HEX | --device-id ID | --cert F)
    atecc csr [--filestore DIR] [--slot N] [--key-slot K] [--cn CN] --out F
    atecc cert-store --in F [--label L] [--force]
    atecc export --in F --format pem|der|c [--name NAME] --out F
    atecc engine-conf --out F [--module PATH] [--engine PATH]
    atecc serve --ca-dir D --cert C --key K [--host 127.0.0.1] [--port 8443] [--crl F]
                [--log-file F] [--handshake-timeout S] [--request-timeout S]
                [--max-connections N] [--registry URL]

Every command but ``serve`` takes ``--json`` (one JSON object on stdout); every CA command takes
``--registry URL`` (default: the CA directory's ``fleet.conf``, else its SQLite file). ``--out -``
is stdout; an existing FIFO, device or symlink given as ``--out`` is written in place
(:mod:`fleet.output`). ``--slot N`` means the slot file ``<N>.conf``, as in every other ``atecc``
command; the chip's key slot is ``--key-slot`` (default 0, the Trust&GO device key).

Must not: do the work itself (``fleet.commands``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from fleet import FleetError, commands

PROG = "atecc"
EXIT_ERROR = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _error(message: str, status: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def guarded(func: Handler) -> Handler:
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


def _whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


_positive_int = _whole(1)
_count = _whole(0)


def _command(subparsers: Any, name: str, func: Handler, text: str, **kw: Any) -> Any:
    parser = subparsers.add_parser(name, help=text, description=text, **kw)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(func=guarded(func))
    return parser


def _ca_options(parser: Any, *, registry: bool = True) -> None:
    parser.add_argument("--dir", required=True, help="CA directory")
    if registry:
        parser.add_argument(
            "--registry",
            metavar="URL",
            help="postgresql://... or sqlite:PATH (default: the CA directory's)",
        )


def _revoke(subparsers: Any, name: str, text: str = "revoke a device certificate") -> None:
    revoke = _command(subparsers, name, commands.ca_revoke, text)
    _ca_options(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", metavar="HEX", help="certificate serial number")
    which.add_argument("--device-id", metavar="ID", help="every active certificate of a device")
    which.add_argument("--cert", metavar="FILE", help="the certificate in this file")
    revoke.add_argument(
        "--reason",
        default="unspecified",
        help="RFC 5280 reason, e.g. keyCompromise (default unspecified)",
    )


def _add_ca(subparsers: Any) -> None:
    ca = subparsers.add_parser("ca", help="device certificate authority and its registry")
    sub = ca.add_subparsers(dest="ca_command", metavar="CA_COMMAND", required=True)

    init = _command(sub, "init", commands.ca_init, "create a CA (key 0600, certificate, registry)")
    init.add_argument("--dir", required=True, help="CA directory (created if missing)")
    init.add_argument("--subject", required=True, help='OpenSSL-style, e.g. "/O=Example/CN=Root"')
    init.add_argument("--days", type=_positive_int, default=3650, help="validity (default 3650)")
    init.add_argument("--registry", metavar="URL", help="postgresql://... to share (fleet.conf)")

    server = _command(sub, "server-cert", commands.ca_server_cert, "TLS server key and certificate")
    _ca_options(server, registry=False)
    server.add_argument("--dns", action="append", metavar="NAME", help="DNS name (repeatable)")
    server.add_argument("--ip", action="append", metavar="ADDR", help="IP address (repeatable)")
    server.add_argument("--cn", help="subject CN (default: the first name)")
    server.add_argument("--days", type=_positive_int, default=365, help="validity (default 365)")
    server.add_argument("--out-key", required=True, help="private key to write (0600), - = stdout")
    server.add_argument("--out-cert", required=True, help="certificate to write, - = stdout")

    sign = _command(sub, "sign", commands.ca_sign, "issue a device certificate from a CSR")
    _ca_options(sign)
    sign.add_argument("--csr", required=True, help="the device's CSR (PEM or DER)")
    sign.add_argument("--days", type=_positive_int, default=365, help="validity (default 365)")
    sign.add_argument(
        "--force", action="store_true", help="certify even a key revoked for keyCompromise"
    )
    sign.add_argument("--out", required=True, help="certificate file to write, - = stdout")

    _revoke(sub, "revoke")

    crl = _command(sub, "crl", commands.ca_crl, "publish a CRL of the revoked devices")
    _ca_options(crl)
    crl.add_argument("--out", required=True, help="CRL file to write (PEM), - = stdout")
    crl.add_argument("--days", type=_positive_int, default=30, help="until nextUpdate (default 30)")

    listing = _command(sub, "list", commands.ca_list, "issued device certificates, oldest first")
    _ca_options(listing)
    listing.add_argument("--status", choices=("active", "revoked"), help="only these")
    listing.add_argument("--limit", type=_count, default=100, help="at most N (default 100)")
    listing.add_argument("--offset", type=_count, default=0, help="skip the first N")

    show = _command(sub, "show", commands.ca_show, "one device's certificates and their status")
    _ca_options(show)
    which = show.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", metavar="HEX", help="certificate serial number")
    which.add_argument("--device-id", metavar="ID", help="every certificate of a device")
    which.add_argument("--cert", metavar="FILE", help="the certificate in this file")


def _device_options(parser: Any) -> None:
    # SUPPRESS: do not reset a --filestore/--slot given before the command (see atecc/cli.py).
    parser.add_argument(
        "--filestore",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="slot-file directory (default: $ATECC_PKCS11_FILESTORE, ...)",
    )
    parser.add_argument(
        "--slot",
        metavar="N",
        type=int,
        default=argparse.SUPPRESS,
        help="slot file <N>.conf to use (default: the first one)",
    )


def add_subcommands(subparsers: Any) -> None:
    """Register the fleet's commands on ``atecc``'s subparsers."""
    _add_ca(subparsers)
    _revoke(subparsers, "revoke", "revoke a device certificate (= atecc ca revoke)")

    csr = _command(subparsers, "csr", commands.csr, "certificate request signed by the chip's key")
    _device_options(csr)
    csr.add_argument(
        "--key-slot", metavar="K", type=int, default=0, help="chip key slot (default 0)"
    )
    csr.add_argument("--cn", help="subject CN (default: the device ID; see 'atecc info')")
    csr.add_argument("--out", required=True, help="CSR file to write (PEM), - = stdout")

    store = _command(
        subparsers, "cert-store", commands.cert_store, "store an issued certificate on the token"
    )
    _device_options(store)
    store.add_argument("--in", dest="input", required=True, help="certificate (PEM or DER)")
    store.add_argument("--label", default="device-tls", help="CKA_LABEL (default device-tls)")
    store.add_argument(
        "--force", action="store_true", help="replace a different certificate of the same key"
    )

    export = _command(subparsers, "export", commands.export, "a certificate as PEM, DER or C")
    export.add_argument(
        "--in", dest="input", required=True, help="certificate (PEM/DER) or a CA directory"
    )
    export.add_argument("--format", required=True, choices=("pem", "der", "c"))
    export.add_argument("--name", help="C array name (default: from the input file, as xxd -i)")
    export.add_argument("--out", required=True, help="file to write, or - for stdout")

    conf = _command(
        subparsers, "engine-conf", commands.engine_conf, "OpenSSL config for libp11's engine"
    )
    conf.add_argument("--out", required=True, help="file to write, or - for stdout")
    conf.add_argument("--module", help="PKCS#11 module (default: atecc module-path)")
    conf.add_argument("--engine", help="libp11's pkcs11.so (default: found on this system)")

    serve = subparsers.add_parser("serve", help="reference mutual-TLS server")
    serve.set_defaults(func=guarded(commands.serve))
    serve.add_argument("--ca-dir", required=True, help="CA directory (ca.crt, its registry)")
    serve.add_argument("--registry", metavar="URL", help="registry (default: the CA directory's)")
    serve.add_argument("--cert", required=True, help="server certificate (PEM)")
    serve.add_argument("--key", required=True, help="server private key (PEM)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8443, help="port (default 8443; 0 = any)")
    serve.add_argument("--crl", help="CRL file checked in the handshake (re-read on change)")
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
    serve.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="open connections at most; the oldest pending handshake makes room (default 256)",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m fleet.cli ...``: these subcommands alone, without the rest of ``atecc``."""
    parser = argparse.ArgumentParser(prog=PROG, description="ATECC608 device fleet")
    add_subcommands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
