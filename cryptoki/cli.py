"""The PKCS#11 layer's subcommands of ``atecc``: signing through the token, OpenSSL configuration.

Owns the arguments and output of::

    atecc sign --in FILE [--key-slot K | --key LABEL] [--format der|raw] --out FILE [--pin-file F]
    atecc openssl-config engine|provider --out FILE [--module PATH] [--engine PATH]
                         [--provider-path PATH] [--pin-file F]
    atecc engine-conf --out FILE ...      (= openssl-config engine, kept for older scripts)

``sign`` signs through :mod:`cryptoki.keyuse`, so the user PIN, its counter and lockout are the
module's. Registered on ``atecc`` through the ``atecc.commands`` entry point (pyproject.toml).
Must not: sign with anything but the token, or print a PIN.
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from atecc import clichip
from atecc.cliutil import UsageError, add_command, check_outputs, emit, guarded, write_out
from atecc.cmd_chip import key_slot
from atecc.pinentry import add_pin_option, pin_source

FORMATS = ("der", "raw")


def slot_id(args: argparse.Namespace) -> int:
    """The token's slot ID: the N of the slot file ``<N>.conf`` the command uses."""
    return int(clichip.slot_file_path(args).stem)


def cmd_sign(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from atecc.cmd_chip import read_input
    from cryptoki.keyuse import token_session

    if args.out is None and not getattr(args, "json", False):
        raise UsageError("give --out FILE (- for stdout) or --json")
    check_outputs(args, args.out)
    digest = hashlib.sha256(read_input(args.input)).digest()
    clichip.warn_if_unlocked(args, "keys")
    directory = clichip.filestore(args)
    with token_session(directory, slot_id(args), pin_source(args)) as token:
        if args.key is not None:
            key = token.private_key(label=args.key)
        else:
            key = token.private_key(chip_slot=args.key_slot)
        raw = token.sign_digest(key, digest)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    signature = encode_dss_signature(r, s) if args.format == "der" else raw
    data: dict[str, Any] = {
        "key": key.label,
        "key_slot": key.chip_slot,
        "sha256": digest.hex(),
        "format": args.format,
        "signature": signature.hex(),
    }
    if args.out is None:
        emit(args, data, "")
        return 0
    written = write_out(args.out, signature)
    data["out"] = written
    if args.out != "-" or getattr(args, "json", False):
        emit(
            args,
            data,
            f"wrote {written}: ECDSA P-256 signature ({args.format}) over SHA-256 of "
            f"{args.input}, key {key.label!r} (chip slot {key.chip_slot})",
        )
    return 0


def cmd_openssl_config(args: argparse.Namespace) -> int:
    from cryptoki import openssl_config
    from cryptoki._paths import module_path

    check_outputs(args, args.out)
    module = args.module or module_path()
    try:
        if args.kind == "engine":
            if args.pin_file:
                raise UsageError(
                    "the engine takes the PIN in the key URI (;pin-value=...) or with -passin; "
                    "--pin-file is for the provider"
                )
            plugin = args.engine or openssl_config.engine_path()
        else:
            plugin = args.provider_path or openssl_config.provider_path()
    except openssl_config.NotFoundError as exc:
        raise UsageError(str(exc)) from None
    text = openssl_config.render(args.kind, module=module, plugin=plugin, pin_file=args.pin_file)
    written = write_out(args.out, text.encode())
    usage = (
        'openssl req -engine pkcs11 -keyform engine -key "pkcs11:token=00ABC;object=device;'
        'type=private" ...'
        if args.kind == "engine"
        else 'openssl req -key "pkcs11:token=00ABC;object=device;type=private" ...'
    )
    emit(
        args,
        {"out": written, "kind": args.kind, args.kind: plugin, "module": module},
        f"wrote {written} ({args.kind} {plugin}, module {module}); use it per command: "
        f"OPENSSL_CONF={written} {usage}",
    )
    return 0


def _openssl_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="file to write, or - for stdout")
    parser.add_argument("--module", help="PKCS#11 module (default: atecc module-path)")
    parser.add_argument("--engine", help="libp11's pkcs11.so (default: found on this system)")
    parser.add_argument(
        "--provider-path", help="pkcs11-provider's pkcs11.so (default: found on this system)"
    )
    parser.add_argument(
        "--pin-file",
        metavar="FILE",
        help="provider only: read the user PIN from FILE when a key needs it",
    )


def add_subcommands(commands: Any) -> None:
    """Register ``sign``, ``openssl-config`` and ``engine-conf`` on ``atecc``."""
    sign = add_command(
        commands,
        "sign",
        guarded(cmd_sign),
        "sign a file with a chip key through the token (ECDSA P-256 over its SHA-256); asks "
        "for the user PIN when the token requires one",
        example=[
            "atecc sign --in msg.txt --out msg.sig",
            "atecc verify --in msg.txt --signature msg.sig",
        ],
        parents=[clichip.common_parser()],
        details="The signature is DER (as OpenSSL writes; --format raw gives 64 bytes R||S). "
        "The PIN comes from --pin-file, $ATECC_PIN or a prompt without echo; each wrong PIN "
        "counts towards the lockout, as a C_Login does.",
    )
    sign.add_argument("--in", dest="input", required=True, metavar="FILE", help="- = stdin")
    sign.add_argument("--out", metavar="FILE", help="signature file, - = stdout")
    which = sign.add_mutually_exclusive_group()
    which.add_argument(
        "--key-slot", type=key_slot, default=0, metavar="K", help="chip key slot (default 0)"
    )
    which.add_argument("--key", metavar="LABEL", help="the token's private key with this label")
    sign.add_argument("--format", choices=FORMATS, default="der", help="der (default) or raw")
    add_pin_option(sign)

    conf = add_command(
        commands,
        "openssl-config",
        guarded(cmd_openssl_config),
        "write an OpenSSL configuration that loads this module through libp11's engine or "
        "the OpenSSL 3 pkcs11-provider",
        example=[
            "atecc openssl-config engine --out engine.cnf",
            "OPENSSL_CONF=engine.cnf openssl req -engine pkcs11 -keyform engine "
            '-key "pkcs11:token=00ABC;object=device;type=private" -new -subj /CN=me',
        ],
        details="Scope it to the commands that use the token (OPENSSL_CONF=file): loaded "
        "globally, the engine breaks OpenSSL's own software EC keys on Debian 12.",
    )
    conf.add_argument("kind", choices=("engine", "provider"), help="engine or provider")
    _openssl_options(conf)

    legacy = add_command(
        commands,
        "engine-conf",
        guarded(cmd_openssl_config),
        "the same as 'atecc openssl-config engine' (kept for older scripts)",
        example="atecc engine-conf --out engine.cnf",
    )
    _openssl_options(legacy)
    legacy.set_defaults(kind="engine")
