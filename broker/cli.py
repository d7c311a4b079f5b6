"""``atecc broker``: run the broker, or diagnose its set-up with ``--check``.

Owns: the subcommand's options and turning them into a :class:`broker.server.Broker`;
``atecc/cli.py`` calls :func:`add_subcommands` when this package is installed::

    atecc broker [--socket PATH] [--module PATH] [--filestore DIR]
                 [--allow-user NAME|UID ...] [--allow-group NAME|GID ...] [--max-clients N]
                 [--handshake-timeout S] [--message-timeout S] [--idle-timeout S] [--check]

Clients reach it with p11-kit's client module (``P11_KIT_SERVER_ADDRESS=unix:path=SOCKET``, or a
p11-kit module file with ``remote: unix:path=SOCKET``; ``scripts/install-p11-kit-module.sh
--broker`` writes one). Errors are one line ``atecc: error: ...`` and exit status 1.

Must not: hold logic the server, peers or check modules own, or read configuration from the
environment except what the module itself reads (``--filestore`` is passed to it as
``ATECC_PKCS11_FILESTORE``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

PROG = "atecc"
EXIT_ERROR = 1

#: A request body may carry up to cryptoki.limits.MAX_DATA_PER_CALL (1 MiB) of data plus its
#: template and framing; anything this large is refused by the relay before p11-kit allocates it.
MAX_REQUEST_BODY = 4 * 1024 * 1024
MAX_REQUEST_OPTIONS = 64 * 1024

log = logging.getLogger("broker")


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _module_path(args: argparse.Namespace) -> str:
    if args.module:
        return str(args.module)
    paths = importlib.import_module("cryptoki._paths")
    return str(paths.module_path())


def cmd_broker(args: argparse.Namespace) -> int:
    from broker import check, listen, relay, server
    from broker.peers import AllowList

    if getattr(args, "filestore", None):
        os.environ["ATECC_PKCS11_FILESTORE"] = os.path.abspath(args.filestore)
    try:
        module = _module_path(args)
        allow = AllowList.from_names(args.allow_user or [], args.allow_group or [])
    except (OSError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.check:
        return check.run(module, args.socket, allow)
    logging.getLogger("broker").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    limits = relay.Limits(
        max_options=MAX_REQUEST_OPTIONS,
        max_body=MAX_REQUEST_BODY,
        handshake_s=args.handshake_timeout,
        message_s=args.message_timeout,
        idle_s=args.idle_timeout,
    )
    try:
        sock, where = listen.listening_socket(args.socket)
    except (listen.ListenError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    broker = server.Broker(module, sock, allow, limits, max_clients=args.max_clients)
    try:
        broker.start()
    except relay.BrokerError as exc:
        sock.close()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    log.info("serving %s on %s; allowed %s", module, where, allow.describe())
    try:
        broker.serve_forever()
    finally:
        broker.close()
        if not where.endswith("(from systemd)"):
            try:
                os.unlink(args.socket)
            except OSError:
                pass
    log.info("stopped")
    return 0


def add_subcommands(subparsers: Any) -> None:
    """Register ``broker`` on the ``atecc`` subparsers."""
    from broker.listen import DEFAULT_SOCKET

    sub = subparsers.add_parser(
        "broker",
        help="own the chip(s) and serve PKCS#11 to other processes over p11-kit's RPC",
        description="Load the PKCS#11 module once and serve it on a UNIX socket to clients "
        "using p11-kit's client module (p11-kit-client.so).",
    )
    sub.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        help=f"UNIX socket to listen on, unless socket-activated (default {DEFAULT_SOCKET})",
    )
    sub.add_argument("--module", help="PKCS#11 module to serve (default: `atecc module-path`)")
    sub.add_argument(
        "--filestore",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="slot-file directory the module uses (default: as the module decides)",
    )
    sub.add_argument(
        "--allow-user",
        action="append",
        metavar="USER",
        help="user (name or uid) allowed to connect; repeatable",
    )
    sub.add_argument(
        "--allow-group",
        action="append",
        metavar="GROUP",
        help="group (name or gid) whose members may connect; repeatable "
        "(with neither option: only the broker's own user)",
    )
    sub.add_argument(
        "--max-clients",
        type=_positive(int),
        default=32,
        help="connections served at once; more are closed at once (default 32)",
    )
    sub.add_argument(
        "--handshake-timeout",
        type=_positive(float),
        default=5.0,
        metavar="S",
        help="seconds from connect to the client's first byte (default 5)",
    )
    sub.add_argument(
        "--message-timeout",
        type=_positive(float),
        default=30.0,
        metavar="S",
        help="seconds for a request, once begun, to arrive in full (default 30)",
    )
    sub.add_argument(
        "--idle-timeout",
        type=_non_negative_float,
        default=0.0,
        metavar="S",
        help="seconds a client may stay silent between requests; 0 = no limit (default)",
    )
    sub.add_argument(
        "--check", action="store_true", help="diagnose the set-up (module, files, socket), exit"
    )
    sub.add_argument(
        "-v", "--verbose", action="store_true", default=False, help="log every connection"
    )
    sub.set_defaults(func=cmd_broker)
