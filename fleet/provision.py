"""``atecc provision``: a blank chip becomes a device with a key, a slot file and a certificate.

Owns the command around :mod:`atecc.provision`: choosing the slot file and the template (or
listing the templates), showing the diff and, with ``--dry-run``, every command it would send
and the slot file it would write (only reads reach the chip); asking for ``--yes`` (or a typed
"yes" on a terminal) before anything is locked; then the chip steps, the slot file, and, with
``--ca-dir``, the certificate step: a CSR signed by the new key through the token (the user PIN
when the token requires one), issued by the CA and recorded in its registry, stored on the token
next to the key. Each step is idempotent, so a rerun after a power loss or a kill finishes the
job: the chip steps look at the chip, the certificate step reuses a certificate the registry
already holds for this key, and an already stored certificate is left alone.

Must not: lock without confirmation, or do the chip's work itself (``atecc.provision``).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atecc import clichip
from atecc.cliutil import CliError, UsageError, add_command, confirm, emit, guarded

REFUSAL = (
    "provisioning locks the chip, which cannot be undone: check the plan with --dry-run, then "
    "run again with --yes"
)


def _templates_text() -> str:
    from atecc.provision.template import BUILT_IN

    lines = [f"{name}: {make().description}" for name, make in BUILT_IN.items()]
    lines.append(
        "FILE: 128 bytes of hex (a config zone dump), or a JSON slot table "
        '({"base": "tls-identity", "slots": {"5": {"slot_config": "0x2085", ...}}})'
    )
    return "\n".join(lines)


def cmd_provision(args: argparse.Namespace) -> int:
    from atecc.errors import AteccError
    from atecc.provision import plan, slots, template

    if args.list_templates:
        emit(args, {"templates": _templates_text().splitlines()}, _templates_text())
        return 0
    try:
        chosen = template.load(args.template)
    except template.TemplateError as exc:
        raise UsageError(str(exc)) from None
    path = clichip.slot_file_path(args)
    device, _ = clichip.open_chip(args)
    try:
        try:
            dry = plan.provision(device, chosen, dry_run=True)
        except (template.TemplateError, plan.ProvisionError) as exc:
            raise UsageError(str(exc)) from None
        changes = template.diff(dry.before, dry.target, chosen)
        slot_text = slots.text(path, chosen)
        if args.dry_run:
            return _show_plan(args, dry, changes, path, slot_text)
        locks_pending = bool(dry.sent)
        if locks_pending:
            if not getattr(args, "json", False):
                print(f"chip {dry.serial} ({path}): template {chosen.name}")
                print("\n".join(changes) or "configuration already as the template says")
            confirm(f"This locks chip {dry.serial} for good.", yes=args.yes, refusal=REFUSAL)
        try:
            outcome = plan.provision(device, chosen)
        except plan.ProvisionError as exc:
            raise CliError(str(exc)) from None
        except AteccError as exc:
            raise CliError(
                f"the chip failed during provisioning ({exc}); run the same command again: it "
                "continues where the chip is"
            ) from None
    finally:
        device.close()
    notes = list(outcome.notes)
    written = slots.write(path, chosen)
    notes.append(f"slot file: {'wrote' if written else 'already up to date:'} {path}")
    data: dict[str, Any] = {
        "serial": outcome.serial,
        "template": chosen.name,
        "slot_file": str(path),
        "public_keys": {str(k): v.hex().upper() for k, v in outcome.public_keys.items()},
        "steps": notes,
    }
    if args.ca_dir:
        data["certificate"] = _certificate(args, path, chosen, notes)
    emit(
        args,
        data,
        f"chip {outcome.serial} provisioned with template {chosen.name}\n" + "\n".join(notes),
    )
    return 0


def _show_plan(
    args: argparse.Namespace, dry: Any, changes: list[str], path: Path, slot_text: str
) -> int:
    from atecc.provision import plan

    commands = [f"{step:<13} {plan.describe(built)}" for step, built in dry.sent]
    data = {
        "serial": dry.serial,
        "changes": changes,
        "commands": [{"step": step, "packet": built[0].encode().hex()} for step, built in dry.sent],
        "slot_file": str(path),
        "slot_file_text": slot_text,
    }
    text = [
        f"chip {dry.serial} ({path}): dry run, nothing is written or locked",
        "",
        "changes:",
        *(f"  {line}" for line in changes or ["none (the configuration is the template's)"]),
        "",
        f"commands ({len(commands)}), in order:" if commands else "commands: none",
        *(f"  {line}" for line in commands),
        "",
        f"then {path} would say:",
        *(f"  {line}" for line in slot_text.splitlines()),
    ]
    if args.ca_dir:
        text.append(f"then a certificate from {args.ca_dir} for the key 'device'")
    emit(args, data, "\n".join(text))
    return 0


def _certificate(
    args: argparse.Namespace, path: Path, chosen: Any, notes: list[str]
) -> dict[str, Any]:
    """The certificate step: leave a certificate already stored for the key alone; else reuse
    the one the registry holds for it (a run killed after the CA signed), else a CSR through
    the token, issued by the CA; then store it on the token next to the key."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from atecc.certs.csr import build_csr
    from atecc.pinentry import pin_source
    from cryptoki.keyuse import token_session
    from cryptoki.provision import store_certificate, stored_certificates
    from fleet.ca import CertificateAuthority
    from fleet.commands import TokenSigner
    from fleet.registry import ACTIVE, format_serial

    if not chosen.labelled:
        raise UsageError(f"template {chosen.name} shows no key to certify")
    role = chosen.labelled[0]
    directory, slot_id = clichip.filestore(args), int(path.stem)
    pins = pin_source(args)
    with token_session(directory, slot_id, pins) as token:
        key = token.private_key(label=role.label)
        stored = stored_certificates(token.lib, token.session, key.key_id)
        if stored:
            cert = x509.load_der_x509_certificate(stored[0][1])
            serial = format_serial(cert.serial_number)
            notes.append(f"certificate: already stored on the token (serial {serial})")
            return {"serial": serial, "action": "unchanged"}
        with CertificateAuthority.load(args.ca_dir, registry_url=args.registry) as ca:
            records = ca.registry.run(lambda txn: txn.for_key(key.key_id.hex().upper()))
            now = datetime.now(UTC)
            held = [
                x509.load_der_x509_certificate(r.certificate) for r in records if r.status == ACTIVE
            ]
            held = [c for c in held if c.not_valid_after_utc > now]
            if held:
                cert, how = held[-1], "reused the certificate the registry holds for this key:"
            else:
                request = build_csr(TokenSigner(token, role.slot), slot=role.slot)
                cert, how = ca.issue_device_certificate(request, days=args.days), "issued"
    result = store_certificate(
        directory, slot_id, cert.public_bytes(Encoding.DER), args.label, pin_source=pins
    )
    serial = format_serial(cert.serial_number)
    notes.append(
        f"certificate: {how} serial {serial} from {args.ca_dir}, {result.action} on the token "
        f"as {args.label!r} next to key {result.key_label!r}"
    )
    return {"serial": serial, "action": result.action, "label": args.label}


def add_provision(subparsers: Any) -> None:
    from atecc.pinentry import add_pin_option

    sub = add_command(
        subparsers,
        "provision",
        guarded(cmd_provision),
        "provision a blank chip: write and lock a configuration template, generate its keys, "
        "lock the data zone, write the slot file (and, with --ca-dir, store a certificate)",
        example=[
            "atecc provision --dry-run                 # the diff and every command, nothing sent",
            "atecc provision --yes --ca-dir ca          # lock, keys, slot file, certificate",
            "atecc provision --template my-layout.json --dry-run",
        ],
        parents=[clichip.common_parser()],
        details="Locking cannot be undone: without --yes the command asks on a terminal and "
        "refuses otherwise. Every step checks the chip first, so after a power loss or a kill "
        "the same command continues where it stopped; a configuration that differs from the "
        "plan is never locked (the Lock command carries the CRC of the planned zone).",
    )
    sub.add_argument(
        "--template",
        default="tls-identity",
        metavar="NAME|FILE",
        help="built-in template name (default tls-identity) or a file: 128 hex bytes or JSON",
    )
    sub.add_argument("--list-templates", action="store_true", help="list the templates, exit")
    sub.add_argument("--dry-run", action="store_true", help="show the plan; send no write or lock")
    sub.add_argument("--yes", action="store_true", help="lock without asking")
    sub.add_argument("--ca-dir", metavar="DIR", help="issue and store a certificate from this CA")
    sub.add_argument("--registry", metavar="URL", help="the CA's registry (default: its own)")
    sub.add_argument("--days", type=int, default=365, help="certificate validity (default 365)")
    sub.add_argument("--label", default="device-tls", help="certificate label (default device-tls)")
    add_pin_option(sub)
