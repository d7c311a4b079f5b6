"""What each fleet subcommand of ``atecc`` does, given its parsed arguments.

Owns: calling :mod:`fleet.ca`, :mod:`fleet.registry`, :mod:`atecc.certs.csr`,
``cryptoki.provision``, :mod:`fleet.export` and :mod:`fleet.server` in the order a command needs,
and saying what happened (a few human lines, or one JSON object with ``--json``, through
:mod:`fleet.output`). Handlers return an exit status; :func:`fleet.cli.guarded` turns their
exceptions into one ``atecc: error:`` line.

Must not: parse arguments (``fleet.cli``) or write files other than through
:func:`fleet.output.write_out`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet import FleetError
from fleet.output import check_outputs, emit, write_out

PROG = "atecc"


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _load_ca(args: argparse.Namespace) -> Any:
    from fleet.ca import CertificateAuthority

    return CertificateAuthority.load(args.dir, registry_url=getattr(args, "registry", None))


# --- ca ------------------------------------------------------------------------------------------


def ca_init(args: argparse.Namespace) -> int:
    from fleet.ca import init_ca

    with init_ca(args.dir, args.subject, days=args.days, registry_url=args.registry) as ca:
        cert = ca.certificate
        registry = ca.registry.where  # creates the registry's schema now
    data = {
        "directory": str(ca.directory),
        "key": str(ca.key_path),
        "certificate": str(ca.certificate_path),
        "subject": cert.subject.rfc4514_string(),
        "not_after": _date(cert.not_valid_after_utc),
        "registry": registry,
    }
    emit(
        args,
        data,
        f"created {ca.key_path} (0600) and {ca.certificate_path}\n"
        f"subject {data['subject']}, valid until {data['not_after']}\nregistry {registry}",
    )
    return 0


def ca_server_cert(args: argparse.Namespace) -> int:
    from fleet.ca_dir import cert_pem, key_pem

    check_outputs(args, args.out_key, args.out_cert)
    with _load_ca(args) as ca:
        key, cert = ca.issue_server_certificate(
            dns_names=args.dns or [], ip_addresses=args.ip or [], days=args.days, cn=args.cn
        )
    key_to = write_out(args.out_key, key_pem(key), mode=0o600)
    cert_to = write_out(args.out_cert, cert_pem(cert))
    names = [*(args.dns or []), *(args.ip or [])]
    data = {
        "key": key_to,
        "certificate": cert_to,
        "names": names,
        "serial": f"{cert.serial_number:X}",
        "not_after": _date(cert.not_valid_after_utc),
    }
    emit(
        args,
        data,
        f"wrote {key_to} (0600) and {cert_to} for {', '.join(names)}, "
        f"valid until {data['not_after']}",
    )
    return 0


def ca_sign(args: argparse.Namespace) -> int:
    from fleet.ca_dir import cert_pem, load_csr
    from fleet.registry import format_serial, key_id_of
    from fleet.subjects import common_name

    check_outputs(args, args.out)
    csr = load_csr(args.csr)
    with _load_ca(args) as ca:
        cert = ca.issue_device_certificate(csr, days=args.days, force=args.force)
    written = write_out(args.out, cert_pem(cert))
    data = {
        "serial": format_serial(cert.serial_number),
        "device_id": common_name(cert.subject),
        "key_id": key_id_of(cert.public_key()),
        "not_after": _date(cert.not_valid_after_utc),
        "certificate": written,
    }
    emit(
        args,
        data,
        f"issued serial {data['serial']} to device {data['device_id']}, "
        f"valid until {data['not_after']}: {written}",
    )
    return 0


def ca_crl(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    check_outputs(args, args.out)
    with _load_ca(args) as ca:
        crl = ca.build_crl(days=args.days)
    written = write_out(args.out, crl.public_bytes(serialization.Encoding.PEM))
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    next_update = crl.next_update_utc
    data = {
        "crl": written,
        "number": number,
        "revoked": len(crl),
        "next_update": _date(next_update) if next_update else None,
    }
    emit(
        args,
        data,
        f"wrote CRL number {number} with {len(crl)} revoked certificate(s) to {written}, "
        f"next update {data['next_update'] or '-'}",
    )
    return 0


def ca_revoke(args: argparse.Namespace) -> int:
    from fleet.ca_dir import load_ca_certificate, load_certificate
    from fleet.registry import open_registry, parse_serial
    from fleet.subjects import parse_reason

    reason = parse_reason(args.reason)
    directory = Path(args.dir)
    load_ca_certificate(directory)  # a CA directory, not just any
    serial = parse_serial(args.serial) if args.serial is not None else None
    if args.cert is not None:
        serial = load_certificate(args.cert).serial_number
    with open_registry(directory, args.registry) as registry:
        records = registry.revoke(serial=serial, device_id=args.device_id, reason=reason)
    lines = [f"revoked serial {r.serial} (device {r.device_id}, reason {reason})" for r in records]
    lines.append(f"publish it: {PROG} ca crl --dir {directory} --out <crl file>")
    emit(args, {"revoked": [r.to_json() for r in records]}, "\n".join(lines))
    return 0


def _record_line(record: Any) -> str:
    state = record.status if record.reason is None else f"{record.status} ({record.reason})"
    return f"{record.serial}  {record.device_id}  {state}  expires {record.expires}"


def ca_list(args: argparse.Namespace) -> int:
    from fleet.ca_dir import load_ca_certificate
    from fleet.registry import open_registry

    load_ca_certificate(Path(args.dir))
    with open_registry(args.dir, args.registry) as registry:
        records = registry.records(status=args.status, limit=args.limit, offset=args.offset)
        total = registry.count(args.status)
    data = {"total": total, "records": [r.to_json() for r in records]}
    text = "\n".join([*(_record_line(r) for r in records), f"{len(records)} of {total} shown"])
    emit(args, data, text)
    return 0


def ca_show(args: argparse.Namespace) -> int:
    from fleet.ca_dir import load_ca_certificate, load_certificate
    from fleet.registry import format_serial, open_registry, parse_serial

    load_ca_certificate(Path(args.dir))
    with open_registry(args.dir, args.registry) as registry:
        if args.serial is not None:
            found = registry.get(parse_serial(args.serial))
            records = [found] if found is not None else []
            what = f"serial {args.serial}"
        elif args.device_id is not None:
            records = registry.find(device_id=args.device_id)
            what = f"device {args.device_id!r}"
        else:
            cert = load_certificate(args.cert)
            found = registry.get(cert.serial_number)
            records = [found] if found is not None else []
            what = f"the certificate in {args.cert} (serial {format_serial(cert.serial_number)})"
    if not records:
        raise FleetError(f"no certificate for {what} in the registry")
    text = "\n".join(
        f"serial      {r.serial}\ndevice id   {r.device_id}\nkey id      {r.key_id}\n"
        f"status      {r.status}{f' since {r.revoked_at} ({r.reason})' if r.revoked_at else ''}\n"
        f"issued      {r.issued}\nexpires     {r.expires}"
        for r in records
    )
    emit(args, {"records": [r.to_json() for r in records]}, text)
    return 0


# --- the device side: csr, cert-store ------------------------------------------------------------


def _slot_file_path(args: argparse.Namespace) -> tuple[Path, Path]:
    from atecc import slotfile

    directory = Path(slotfile.filestore_dir(getattr(args, "filestore", None)))
    return directory, slotfile.select_slot_file(directory, getattr(args, "slot", None))


def csr(args: argparse.Namespace) -> int:
    from atecc import slotfile
    from atecc.certs.csr import build_csr, csr_pem
    from fleet.subjects import common_name

    if not 0 <= args.key_slot <= 15:
        raise FleetError(f"--key-slot must be 0..15, not {args.key_slot}")
    check_outputs(args, args.out)
    _, path = _slot_file_path(args)
    device = slotfile.open_device(slotfile.parse_slot_file(path).interface)
    try:
        request = build_csr(device, common_name=args.cn, slot=args.key_slot)
    finally:
        device.close()
    written = write_out(args.out, csr_pem(request))
    data = {"csr": written, "cn": common_name(request.subject), "key_slot": args.key_slot}
    emit(
        args,
        data,
        f"wrote {written}: CN={data['cn']}, key in chip slot {args.key_slot}, signed by the chip",
    )
    return 0


def cert_store(args: argparse.Namespace) -> int:
    """Put an issued certificate on the token next to its key (same CKA_ID), through the
    PKCS#11 core, so every PKCS#11 client finds it there."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from cryptoki.provision import store_certificate
    from fleet.ca_dir import load_certificate

    der = load_certificate(args.input).public_bytes(Encoding.DER)
    directory, path = _slot_file_path(args)
    stored = store_certificate(directory, int(path.stem), der, args.label, replace=args.force)
    data = {
        "action": stored.action,
        "slot": stored.slot_id,
        "label": stored.label,
        "key_label": stored.key_label,
        "key_id": stored.key_id.hex().upper(),
    }
    if stored.action == "unchanged":
        text = f"{args.input} is already stored next to private key {stored.key_label!r}"
    else:
        text = (
            f"{stored.action} {args.input} as certificate {stored.label!r} in token slot "
            f"{stored.slot_id}, next to private key {stored.key_label!r} "
            f"(CKA_ID {stored.key_id.hex()})"
        )
    emit(args, data, text)
    return 0


# --- export, engine-conf -------------------------------------------------------------------------


def export(args: argparse.Namespace) -> int:
    from fleet.export import c_identifier, default_name, load_certificates, render

    check_outputs(args, args.out)
    name = c_identifier(args.name) if args.name else default_name(args.input)
    data = render(load_certificates(args.input), args.format, name=name)
    if args.out == "-" and args.format == "der" and os.isatty(1):
        raise FleetError("DER is binary: redirect stdout or give --out FILE")
    written = write_out(args.out, data)
    if args.out != "-" or args.json:
        emit(
            args,
            {"out": written, "format": args.format, "bytes": len(data)},
            f"wrote {written} ({args.format}, {len(data)} bytes)",
        )
    return 0


def _engine_path() -> str:
    """libp11's OpenSSL engine (as scripts/find-pkcs11-engine.sh finds it)."""
    candidates = []
    openssl = shutil.which("openssl")
    if openssl:
        out = subprocess.run([openssl, "version", "-e"], capture_output=True, text=True, timeout=30)
        for line in out.stdout.splitlines():
            if line.startswith("ENGINESDIR:"):
                candidates.append(Path(line.split(":", 1)[1].strip().strip('"')) / "pkcs11.so")
    candidates += sorted(Path("/usr/lib").glob("*/engines-3/pkcs11.so"))
    candidates += sorted(Path("/usr/lib").glob("*/engines-1.1/pkcs11.so"))
    for path in candidates:
        if path.is_file():
            return str(path)
    raise FleetError("libp11's pkcs11 engine not found (install libengine-pkcs11-openssl)")


def engine_conf(args: argparse.Namespace) -> int:
    """An OpenSSL configuration that loads libp11's engine with this project's module, for
    ``OPENSSL_CONF=engine.cnf curl --engine pkcs11 ...`` (scoped to that one command)."""
    from cryptoki._paths import module_path

    check_outputs(args, args.out)
    template = (Path(__file__).with_name("openssl-pkcs11-engine.cnf.in")).read_text()
    engine = args.engine or _engine_path()
    module = args.module or module_path()
    text = template.replace("@ENGINE_PATH@", engine).replace("@MODULE_PATH@", module)
    written = write_out(args.out, text.encode())
    emit(
        args,
        {"out": written, "engine": engine, "module": module},
        f"wrote {written} (engine {engine}, module {module})",
    )
    return 0


# --- serve ---------------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
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
        registry_url=args.registry,
        handshake_timeout_s=args.handshake_timeout,
        request_timeout_s=args.request_timeout,
        max_connections=args.max_connections,
    )
    return run(config, log_path=Path(args.log_file) if args.log_file else None)
