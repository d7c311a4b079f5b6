"""The slot file of a provisioned chip, so the module serves its new key at once.

Owns: the text of ``<N>.conf`` after provisioning -- the ``interface`` line and the PKCS#11
layer's keys (``user_pin``) kept as the user wrote them, ``device = ATECC608`` (a customer-
provisioned part: the slot file says everything), the label kept, ``object = private,...``
for each key the template shows, ``freeslots`` for the slots the module may fill -- and writing
it atomically, only when it changes.

Must not: touch any other file.
"""

from __future__ import annotations

from pathlib import Path

from atecc.fileio import atomic_write, read_limited
from atecc.provision.template import Template
from atecc.slotfile import MAX_SLOT_FILE_BYTES, PKCS11_KEYS, parse_slot_file

KEEP = ("interface", *sorted(PKCS11_KEYS))


def text(path: Path, template: Template) -> str:
    """What ``path`` should say once the chip has ``template``."""
    parsed = parse_slot_file(path)
    kept: dict[str, str] = {}
    for raw in read_limited(path, max_bytes=MAX_SLOT_FILE_BYTES).decode("utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() in KEEP:
            kept[key.strip().lower()] = f"{key.strip().lower()} = {value.strip()}"
    lines = [
        f"# Provisioned by 'atecc provision' with template {template.name}.",
        kept.get("interface", "# interface: the default (i2c,0xC0,2)"),
        "device = ATECC608",
        f"label = {parsed.label}",
    ]
    if template.freeslots:
        lines.append(f"freeslots = {','.join(str(n) for n in template.freeslots)}")
    lines += [f"object = private,{role.label},{role.slot}" for role in template.labelled]
    lines += [kept[key] for key in sorted(PKCS11_KEYS) if key in kept]
    return "\n".join(lines) + "\n"


def write(path: Path, template: Template) -> bool:
    """Write the provisioned slot file; False when it already says exactly that."""
    wanted = text(path, template)
    if read_limited(path, max_bytes=MAX_SLOT_FILE_BYTES).decode("utf-8") == wanted:
        return False
    atomic_write(path, wanted.encode(), mode=0o644)
    return True
