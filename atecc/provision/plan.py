"""Provisioning a chip with a template: the commands, in an order that survives a power loss.

Owns: :func:`provision`, which reads the chip, decides what is left to do, and sends it one
command at a time (or, in a dry run, only lists it):

1. config unlocked: write the config units that differ from the template's image, read the zone
   back and compare, then Lock(config) with the CRC of that image -- the chip refuses the lock if
   its zone is not exactly that image, so a wrong configuration is never locked;
   config locked: it must already be the template's image (else nothing is done);
2. data unlocked: GenKey in the template's key slots, then every other slot and the OTP zone
   written with known bytes (zeros), then Lock(data) with the CRC of exactly that content;
3. data locked: every generated key answers (its public key is read; a key a chip locked
   elsewhere never got is generated now if its slot allows GenKey after the lock).

Every step looks at the chip first, so running again after a power loss at any point continues
where the chip is: a config written but not locked is compared and rewritten, keys generated but
not locked in are generated again (nothing used them yet), a locked zone is never touched again.
:data:`step_hook` (tests only, as :data:`atecc.fileio.crash_hook`) is called before each command
with its step's name, so a test can cut the power at every point in turn.

Must not: lock anything in a dry run, or lock a zone whose read-back differs from the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from atecc import commands as cmd
from atecc.config_zone import ConfigZone
from atecc.constants import BLOCK_SIZE, OTP_ZONE_SIZE, SLOT_COUNT, Opcode, Zone, slot_size
from atecc.crc import crc16
from atecc.device import Device, config_write_plan, data_zone_crc
from atecc.packet import Command
from atecc.provision.template import WRITABLE, Template, TemplateError, check

Built = tuple[Command, int | None]

#: Tests only: called with a step name ("write-config", "lock-config", "generate-key",
#: "write-data", "lock-data", "check-key") before each command of that step is sent.
step_hook: Callable[[str], None] | None = None


class ProvisionError(Exception):
    """The chip cannot (or must not) be provisioned as asked; nothing irreversible was done
    by the step that failed."""


@dataclass
class Outcome:
    """What a run did (or, in a dry run, would do)."""

    serial: str
    before: bytes  #: the config zone as read first
    target: bytes  #: the config image the template gives this chip
    #: (step, command) in order: what was sent, or in a dry run what would be
    sent: list[tuple[str, Built]] = field(default_factory=list)
    public_keys: dict[int, bytes] = field(default_factory=dict)  #: generated slot -> X||Y
    notes: list[str] = field(default_factory=list)  #: what each step found or did, in words
    config_locked: bool = False
    data_locked: bool = False


def _send(device: Device, outcome: Outcome, step: str, built: Built, *, dry_run: bool) -> bytes:
    outcome.sent.append((step, built))
    if dry_run:
        return b""
    if step_hook is not None:
        step_hook(step)
    command = built[0]
    idempotent = command.opcode in (Opcode.WRITE, Opcode.READ, Opcode.INFO)
    return bytes(device.execute(built, idempotent=idempotent))


def describe(built: Built) -> str:
    """A command as a dry run prints it: its name, parameters and the exact packet."""
    command = built[0]
    try:
        name = Opcode(command.opcode).name
    except ValueError:
        name = f"0x{command.opcode:02X}"
    data = f", {len(command.data)} data bytes" if command.data else ""
    return (
        f"{name:<7} param1=0x{command.param1:02X} param2=0x{command.param2:04X}{data}: "
        f"{command.encode().hex(' ').upper()}"
    )


def _writable_differences(a: bytes, b: bytes) -> list[int]:
    return sorted(o for o in WRITABLE if a[o] != b[o])


def _config_step(device: Device, template: Template, outcome: Outcome, *, dry_run: bool) -> bytes:
    """Step 1: the config zone becomes the template's image and is locked (see the module)."""
    current, target = outcome.before, outcome.target
    if ConfigZone(current).is_config_locked:
        wrong = [o for o in template.assignments if current[o] != target[o]]
        if wrong:
            raise ProvisionError(
                "the configuration zone is locked with another configuration (bytes "
                f"{', '.join(str(o) for o in wrong[:8])}{' ...' if len(wrong) > 8 else ''} differ "
                f"from template {template.name}): this chip cannot take it"
            )
        outcome.notes.append("config: already locked with this template's configuration")
        outcome.config_locked = True
        return current
    writes = config_write_plan(target, current)
    for built in writes:
        _send(device, outcome, "write-config", built, dry_run=dry_run)
    image = target
    if not dry_run:
        image = bytes(device.read_config_zone())
        wrong = _writable_differences(image, target)
        if wrong:
            raise ProvisionError(
                f"the configuration read back differs from the template at bytes {wrong[:8]}: "
                "nothing was locked; run again (or check the template)"
            )
    crc = crc16(image)
    _send(device, outcome, "lock-config", cmd.lock("config", crc=crc), dry_run=dry_run)
    outcome.notes.append(
        f"config: wrote {len(writes)} unit(s), read back equal, locked (CRC {crc:04X})"
    )
    outcome.config_locked = not dry_run
    return image


def _data_step(
    device: Device, template: Template, config: bytes, outcome: Outcome, *, dry_run: bool
) -> None:
    """Step 2: keys generated, the rest of the data zone and the OTP zone written with zeros,
    then locked with the CRC of exactly that content."""
    zone = ConfigZone(config)
    for slot in template.generated:
        public = _send(device, outcome, "generate-key", cmd.gen_key(slot), dry_run=dry_run)
        if public:
            outcome.public_keys[slot] = public
    contents: list[bytes] = []
    for slot in range(SLOT_COUNT):
        size = slot_size(slot)
        contents.append(bytes(size))
        if zone.is_private_key_slot(slot):
            continue  # written by GenKey only, and outside the lock's CRC
        for block in range((size + BLOCK_SIZE - 1) // BLOCK_SIZE):
            built = cmd.write(Zone.DATA, bytes(BLOCK_SIZE), slot=slot, block=block)
            _send(device, outcome, "write-data", built, dry_run=dry_run)
    otp = bytes(OTP_ZONE_SIZE)
    for block in range(OTP_ZONE_SIZE // BLOCK_SIZE):
        _send(
            device,
            outcome,
            "write-data",
            cmd.write(Zone.OTP, bytes(BLOCK_SIZE), block=block),
            dry_run=dry_run,
        )
    crc = data_zone_crc(config, contents, otp)
    _send(device, outcome, "lock-data", cmd.lock("data", crc=crc), dry_run=dry_run)
    outcome.notes.append(
        f"data: generated the key(s) in slot(s) {', '.join(map(str, template.generated))}, "
        f"wrote the other slots and the OTP zone with zeros, locked (CRC {crc:04X})"
    )
    outcome.data_locked = not dry_run


def _keys_step(device: Device, template: Template, config: bytes, outcome: Outcome) -> None:
    """Step 3: after the data lock, every generated key is there (and its public key known)."""
    zone = ConfigZone(config)
    for slot in template.generated:
        if slot in outcome.public_keys:
            continue
        if not device.key_valid(slot):
            if not zone.slot_config(slot).genkey_allowed:
                raise ProvisionError(
                    f"slot {slot} holds no key and its configuration forbids GenKey after the "
                    "data lock: this chip was locked without it"
                )
            public = _send(device, outcome, "generate-key", cmd.gen_key(slot), dry_run=False)
            outcome.notes.append(f"keys: slot {slot} had no key; generated one")
        else:
            if step_hook is not None:
                step_hook("check-key")
            public = bytes(device.get_public_key(slot))
        outcome.public_keys[slot] = public


def provision(device: Device, template: Template, *, dry_run: bool = False) -> Outcome:
    """Bring ``device`` to ``template`` from wherever it is (see the module docstring)."""
    current = bytes(device.read_config_zone())
    target = template.apply(current)
    check(template, target)
    zone = ConfigZone(current)
    outcome = Outcome(serial=zone.serial.hex().upper(), before=current, target=target)
    config = _config_step(device, template, outcome, dry_run=dry_run)
    if dry_run and not zone.is_config_locked:
        _data_step(device, template, target, outcome, dry_run=True)
        return outcome
    if not ConfigZone(bytes(device.read_config_zone())).is_config_locked and not dry_run:
        raise ProvisionError("the configuration zone did not lock")
    if not zone.is_data_locked:
        _data_step(device, template, config, outcome, dry_run=dry_run)
        if not dry_run and not ConfigZone(bytes(device.read_config_zone())).is_data_locked:
            raise ProvisionError("the data zone did not lock")
    else:
        outcome.notes.append("data: already locked")
        outcome.data_locked = True
    if not dry_run:
        _keys_step(device, template, config, outcome)
    return outcome


__all__ = ["Outcome", "ProvisionError", "TemplateError", "describe", "provision", "step_hook"]
