"""The driver's chip commands of ``atecc``: look at a chip, and use it where no key is involved.

Owns: ``info``, ``config``, ``random``, ``certs``, ``pubkey``, ``verify`` and ``raw``: their
arguments, the reads through :class:`atecc.device.Device` (so what they show is what the PKCS#11
module sees) and what they print. ``raw`` sends a packet as typed; a packet that uses a chip key
on a token whose slot file says ``user_pin = required`` first needs the user PIN, checked by the
PKCS#11 layer (entry-point group ``atecc.key_use``, see :func:`authorize_key_use`), with the same
counter and lockout as the module. Signing (``atecc sign``), CSRs and certificates use keys and
live in the layers above.

Must not: sign, decrypt or otherwise use a private or secret key without that check.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Any

from atecc import clichip
from atecc.cliutil import CliError, UsageError, add_command, check_outputs, emit, write_out
from atecc.constants import KeyType, Opcode
from atecc.packet import Command
from atecc.pinentry import PinSource, add_pin_option, pin_source

#: Entry-point group of the function that checks the user PIN before a raw packet uses a key.
KEY_USE_GROUP = "atecc.key_use"
#: ``random --bytes``: at most this many (what C_GenerateRandom gives in one call).
MAX_RANDOM_BYTES = 65536
#: ``verify --in``: messages are hashed in memory, up to this size.
MAX_MESSAGE_BYTES = 64 * 2**20


def _parents() -> list[argparse.ArgumentParser]:
    return [clichip.common_parser()]


# --- info, config --------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    from atecc.certs.csr import device_id_for_serial

    device, slot_file = clichip.open_chip(args)
    try:
        config = device.config_zone()
        revision = device.revision()
    finally:
        device.close()
    data = {
        "serial": config.serial.hex().upper(),
        "device_id": device_id_for_serial(bytes(config.serial)),
        "revision": bytes(revision).hex().upper(),
        "model": config.model,
        "config_locked": config.is_config_locked,
        "data_locked": config.is_data_locked,
        "i2c_address": f"0x{config.i2c_address7:02X}",
        "device": slot_file.device,
        "label": slot_file.label,
        "slot_file": str(slot_file.path),
    }
    lines = [
        f"serial        {data['serial']}",
        f"device id     {data['device_id']} (the CN of 'atecc csr')",
        f"model         {data['model']} (revision {data['revision']})",
        f"i2c address   {data['i2c_address']} (7-bit)",
        f"config zone   {'locked' if data['config_locked'] else 'UNLOCKED'}",
        f"data zone     {'locked' if data['data_locked'] else 'UNLOCKED'}",
    ]
    if not config.is_config_locked or not config.is_data_locked:
        lines.append("              a blank or half-provisioned chip: see 'atecc provision --help'")
    emit(args, data, "\n".join(lines))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    device, _ = clichip.open_chip(args)
    try:
        config = device.config_zone()
    finally:
        device.close()
    data = {
        "serial": config.serial.hex().upper(),
        "model": config.model,
        "config_locked": config.is_config_locked,
        "data_locked": config.is_data_locked,
        "config_zone": config.data.hex().upper(),
        "slots": [
            {
                "slot": row.slot,
                "type": row.key_type,
                "read": row.read,
                "write": row.write,
                "use": row.use,
                "lock": row.lock,
            }
            for row in config.describe_slots()
        ],
    }
    emit(args, data, config.format_table())
    return 0


# --- random --------------------------------------------------------------------------------------


def _byte_count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_RANDOM_BYTES:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..{MAX_RANDOM_BYTES}")
    return value


def cmd_random(args: argparse.Namespace) -> int:
    device, _ = clichip.open_chip(args)
    try:
        config = device.config_zone()
        chunks = [bytes(device.random()) for _ in range((args.bytes + 31) // 32)]
    finally:
        device.close()
    clichip.lock_warning(config, "random")
    value = b"".join(chunks)[: args.bytes]
    emit(
        args,
        {
            "random": value.hex().upper(),
            "bytes": len(value),
            "config_locked": config.is_config_locked,
        },
        value.hex().upper(),
    )
    return 0


# --- certs ---------------------------------------------------------------------------------------


def cmd_certs(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from atecc.certs.compressed import CertificateError
    from atecc.certs.factory import public_key_bytes
    from atecc.certs.rebuild import read_chain
    from atecc.errors import ExecutionError

    device, slot_file = clichip.open_chip(args)
    root_pem = _root_ca(slot_file)
    root_key = None
    if root_pem is not None:
        root_public = x509.load_pem_x509_certificate(root_pem).public_key()
        if isinstance(root_public, ec.EllipticCurvePublicKey):
            root_key = public_key_bytes(root_public)
    try:
        device_der, signer_der = read_chain(device, root_public_key=root_key)
    except (CertificateError, ExecutionError) as exc:
        raise CliError(
            f"no Trust&GO certificate chain on this chip ({exc}); certificates stored on the "
            "token are listed by 'p11tool --list-all'"
        ) from exc
    finally:
        device.close()

    blocks: list[tuple[str, str, x509.Certificate]] = []
    for name, der in (("device", device_der), ("signer", signer_der)):
        blocks.append((name, f"{name} certificate", x509.load_der_x509_certificate(der)))
    if root_pem is not None:
        blocks.append(
            ("root", f"root CA ({slot_file.root_ca})", x509.load_pem_x509_certificate(root_pem))
        )
    data: dict[str, Any] = {"device": None, "signer": None, "root": None}
    text = []
    for key, title, cert in blocks:
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        data[key] = pem
        text.append(
            f"# {title}: subject {cert.subject.rfc4514_string()}, issuer "
            f"{cert.issuer.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d}\n"
            f"{pem}"
        )
    emit(args, data, "".join(text).rstrip("\n"))
    return 0


def _root_ca(slot_file: Any) -> bytes | None:
    """The root CA certificate (PEM) the slot file's ``root_ca`` names, if any."""
    if slot_file.root_ca is None:
        return None
    try:
        return bytes(slot_file.root_ca.read_bytes())
    except OSError as exc:
        raise UsageError(f"{slot_file.path}: root_ca {slot_file.root_ca}: {exc.strerror}") from exc


# --- pubkey, verify ------------------------------------------------------------------------------


def key_slot(text: str) -> int:
    """An argparse type: a chip slot number, 0..15."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a slot number") from None
    if not 0 <= value <= 15:
        raise argparse.ArgumentTypeError(f"chip slots are 0..15, not {value}")
    return value


def chip_public_key(args: argparse.Namespace, slot: int) -> tuple[bytes, Any]:
    """X||Y of the key in chip ``slot`` (computed from a private key, or read from a public-key
    slot), and the config zone, with the lock warning said."""
    device, _ = clichip.open_chip(args)
    try:
        config = device.config_zone()
        if config.is_private_key_slot(slot):
            if not config.key_config(slot).pub_info and config.is_data_locked:
                raise UsageError(f"chip slot {slot}'s configuration does not give its public key")
            public = bytes(device.get_public_key(slot))
        elif config.key_config(slot).key_type == KeyType.P256 and slot >= 8:  # a stored public key
            public = bytes(device.read_public_key(slot))
        else:
            raise UsageError(f"chip slot {slot} holds no P-256 key")
    finally:
        device.close()
    clichip.lock_warning(config, "keys")
    return public, config


def _spki_pem(public: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + public)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def cmd_pubkey(args: argparse.Namespace) -> int:
    check_outputs(args, args.out)
    public, _ = chip_public_key(args, args.key_slot)
    pem = _spki_pem(public)
    data = {"key_slot": args.key_slot, "public_key": public.hex().upper(), "pem": pem.decode()}
    if args.out is None:
        emit(args, data, pem.decode().rstrip("\n"))
        return 0
    written = write_out(args.out, pem)
    if args.out != "-" or getattr(args, "json", False):
        emit(
            args,
            {**data, "out": written},
            f"wrote the public key of chip slot {args.key_slot} to {written}",
        )
    return 0


def read_input(path: str, *, what: str = "--in") -> bytes:
    """A message from a file, or standard input for ``-`` (bounded)."""
    from atecc.fileio import FileRefusedError, read_limited

    if path == "-":
        data = sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)
    else:
        try:
            data = read_limited(path, max_bytes=MAX_MESSAGE_BYTES)
        except FileRefusedError as exc:
            raise UsageError(f"{what} {path}: {exc.strerror}") from None
    if len(data) > MAX_MESSAGE_BYTES:
        raise UsageError(f"{what}: messages are at most {MAX_MESSAGE_BYTES} bytes")
    return data


def signature_rs(data: bytes) -> tuple[int, int]:
    """(r, s) from a DER Ecdsa-Sig-Value (as OpenSSL writes) or 64 raw bytes R||S."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    if len(data) == 64:
        return int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
    try:
        return decode_dss_signature(data)
    except ValueError:
        raise UsageError(
            "the signature is neither DER (as 'atecc sign' and OpenSSL write) nor 64 bytes R||S"
        ) from None


def cmd_verify(args: argparse.Namespace) -> int:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import (
        Prehashed,
        encode_dss_signature,
    )

    message = read_input(args.input)
    signature = read_input(args.signature, what="--signature")
    r, s = signature_rs(signature)
    if args.pubkey is not None:
        loaded = serialization.load_pem_public_key(read_input(args.pubkey, what="--pubkey"))
        if not isinstance(loaded, ec.EllipticCurvePublicKey):
            raise UsageError(f"--pubkey {args.pubkey} is not an EC public key")
        key = loaded
        source = args.pubkey
    else:
        public, _ = chip_public_key(args, args.key_slot)
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + public)
        source = f"chip slot {args.key_slot}"
    digest = hashlib.sha256(message).digest()
    try:
        key.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        valid = True
    except InvalidSignature:
        valid = False
    emit(
        args,
        {"valid": valid, "key": source, "sha256": digest.hex()},
        f"signature {'OK' if valid else 'does NOT verify'} (ECDSA P-256, SHA-256, key {source})",
    )
    return 0 if valid else 1


# --- raw -----------------------------------------------------------------------------------------


def parse_hex(text: str) -> bytes:
    """Bytes from hex written with or without spaces/colons (``07 30 00 00 00 03 5D``)."""
    cleaned = "".join(text.replace(":", " ").replace(",", " ").split())
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise UsageError(f"malformed hex {text!r}") from None


#: Commands that use no key at all (any mode), by opcode.
_KEYLESS = {
    Opcode.READ,
    Opcode.NONCE,
    Opcode.LOCK,
    Opcode.RANDOM,
    Opcode.UPDATEEXTRA,
    Opcode.COUNTER,
    Opcode.INFO,
    Opcode.SELFTEST,
}


def key_use(command: Command) -> str | None:
    """What chip key ``command`` uses (or replaces), or None when it uses none.

    Unknown opcodes count as using a key (fail closed). Write is keyless unless encrypted (then
    it needs a GenDig with the write key); GenKey only when it creates a key; SHA only in HMAC
    mode; Verify only in its MAC mode (the IO protection key).
    """
    op, mode, slot = command.opcode, command.param1, command.param2
    if op in _KEYLESS:
        return None
    if op == Opcode.WRITE:
        return "an encrypted Write (the slot's write key)" if mode & 0x40 else None
    if op == Opcode.GENKEY:
        return f"GenKey creating a key in slot {slot}" if mode & 0x04 else None
    if op == Opcode.SHA:
        return f"SHA HMAC with the key in slot {slot}" if mode & 0x07 == 0x04 else None
    if op == Opcode.VERIFY:
        return "Verify with a MAC (the IO protection key)" if mode & 0x80 else None
    try:
        name = Opcode(op).name
    except ValueError:
        return f"an unknown command (opcode 0x{op:02X})"
    return f"{name} with slot {slot}"


def authorize_key_use(args: argparse.Namespace, slot_file: Any, what: str, pin: PinSource) -> None:
    """Ask the PKCS#11 layer to check the user PIN before ``what`` uses a chip key.

    The layer above owns PINs; it is found through :data:`KEY_USE_GROUP`. When no layer
    registered a check, a token with ``user_pin = required`` refuses (fail closed).
    """
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=KEY_USE_GROUP), key=lambda e: e.name)
    if found:
        found[0].load()(slot_file.path, pin, what)
        return
    setting = slot_file.extra.get("user_pin")
    if setting is not None and setting[0].strip().lower() == "required":
        raise CliError(f"{what} needs the user PIN, and no PIN check is installed")


def cmd_raw(args: argparse.Namespace) -> int:
    from atecc.packet import decode_command

    packet = parse_hex(" ".join(args.packet))
    try:
        command = decode_command(packet)
    except ValueError as exc:
        raise UsageError(f"not a command packet: {exc}") from None
    uses = key_use(command)
    if uses is not None:
        authorize_key_use(args, clichip.slot_file(args), uses, pin_source(args))
    device, _ = clichip.open_chip(args)
    try:
        reply = bytes(device.raw(packet))
    finally:
        device.close()
    spaced = reply.hex(" ").upper()
    emit(args, {"command": packet.hex(" ").upper(), "reply": spaced}, spaced)
    return 0


# --- registration --------------------------------------------------------------------------------


def add_subcommands(commands: Any) -> None:
    add_command(
        commands,
        "info",
        cmd_info,
        "serial number, device ID, revision, model, locks and I2C address of the chip",
        example="atecc info --json",
        parents=_parents(),
    )
    add_command(
        commands,
        "config",
        cmd_config,
        "the configuration zone as a table: who may read, write and use each slot",
        example="atecc config --slot 0",
        parents=_parents(),
    )
    rnd = add_command(
        commands,
        "random",
        cmd_random,
        "random bytes from the chip's generator, as hex",
        example="atecc random --bytes 16",
        parents=_parents(),
    )
    rnd.add_argument(
        "--bytes",
        type=_byte_count,
        default=32,
        metavar="N",
        help=f"how many (1..{MAX_RANDOM_BYTES}, default 32)",
    )
    add_command(
        commands,
        "certs",
        cmd_certs,
        "the chip's Trust&GO device and signer certificates (PEM, each with a title line), "
        "and the emulated root",
        example="atecc certs > chain.pem",
        parents=_parents(),
    )
    pub = add_command(
        commands,
        "pubkey",
        cmd_pubkey,
        "the public key of a chip key slot, as PEM (SubjectPublicKeyInfo)",
        example=["atecc pubkey --key-slot 0 --out device.pub", "atecc pubkey --json"],
        parents=_parents(),
    )
    pub.add_argument(
        "--key-slot", type=key_slot, default=0, metavar="K", help="chip slot (default 0)"
    )
    pub.add_argument("--out", metavar="FILE", help="write the PEM here (- = stdout)")
    ver = add_command(
        commands,
        "verify",
        cmd_verify,
        "check an ECDSA P-256 signature over a file (SHA-256) with a chip key or a PEM key; "
        "exit status 1 when it does not verify",
        example=[
            "atecc verify --in msg.txt --signature msg.sig",
            "openssl dgst -sha256 -verify device.pub -signature msg.sig msg.txt  # the same",
        ],
        parents=_parents(),
    )
    ver.add_argument(
        "--in", dest="input", required=True, metavar="FILE", help="message (- = stdin)"
    )
    ver.add_argument(
        "--signature", required=True, metavar="FILE", help="DER (as OpenSSL writes) or 64-byte R||S"
    )
    which = ver.add_mutually_exclusive_group()
    which.add_argument(
        "--key-slot", type=key_slot, default=0, metavar="K", help="chip key slot (default 0)"
    )
    which.add_argument("--pubkey", metavar="PEM", help="verify with this public key instead")
    raw = add_command(
        commands,
        "raw",
        cmd_raw,
        "send one raw command packet (COUNT..CRC) and print the reply group",
        example='atecc raw "07 30 00 00 00 03 5D"     # Info(revision)',
        parents=_parents(),
        details="A packet that uses a chip key (Sign, ECDH, MAC, AES, ...) on a token with "
        "'user_pin = required' first needs the user PIN, counted like a C_Login.",
    )
    raw.add_argument("packet", nargs="+", help='hex bytes, e.g. "07 30 00 00 00 03 5D"')
    add_pin_option(raw)


__all__ = ["add_subcommands", "key_use", "parse_hex", "read_input", "signature_rs"]
