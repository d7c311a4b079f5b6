"""Provisioning a blank emulated ATECC608 with a template (issue 14 point 1), through the driver:
templates and their checks, the whole run, a power loss at every step followed by a rerun
(never a half-locked chip, never a locked wrong configuration), the Lock CRC guard, a chip
locked with another configuration, and the dry run. Every chip is a fresh emulated blank part.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from atecc import commands as cmd
from atecc.config_zone import ConfigZone
from atecc.constants import Opcode, Zone
from atecc.emulator.profiles import create_chip
from atecc.errors import ExecutionError
from atecc.provision import plan, template
from atecc.provision.template import WRITABLE, TemplateError
from atecc.slotfile import EmulatorInterface, open_device


class PowerLoss(BaseException):
    """The power goes at a step: nothing after it runs, the chip's volatile state is lost."""


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    state = tmp_path / "blank.json"
    create_chip(state, "ATECC608")
    return state


@pytest.fixture
def hook() -> Iterator[list]:
    """Install a step hook for one test: a list of callables run for each step name."""
    calls: list = []
    plan.step_hook = lambda step: [c(step) for c in calls]
    yield calls
    plan.step_hook = None


def chip(state: Path):
    return open_device(EmulatorInterface(state))


def config_of(state: Path) -> bytes:
    device = chip(state)
    try:
        return bytes(device.read_config_zone())
    finally:
        device.close()


TLS = template.load("tls-identity")


def assert_provisioned(state: Path, before: bytes) -> None:
    config = config_of(state)
    zone = ConfigZone(config)
    assert zone.is_config_locked and zone.is_data_locked
    target = TLS.apply(before)
    assert [o for o in WRITABLE if config[o] != target[o]] == []
    device = chip(state)
    try:
        for slot in TLS.generated:
            assert device.key_valid(slot)
        public = device.get_public_key(0)
        digest = bytes(range(32))
        signature = device.sign_digest(0, digest)
        assert device.verify_external(digest, signature, public)
    finally:
        device.close()


# --- templates -----------------------------------------------------------------------------------


def test_the_tls_identity_template_shows_a_device_key_and_spare_slots(blank: Path) -> None:
    image = TLS.apply(config_of(blank))
    template.check(TLS, image)
    assert TLS.generated == (0, 1)
    assert [(r.label, r.slot) for r in TLS.labelled] == [("device", 0)]
    assert TLS.freeslots == (2, 3, 4, 9)
    assert image[16] == config_of(blank)[16]  # the I2C address is kept


@pytest.mark.parametrize(
    ("slots", "says"),
    [
        ({"5": {"generate": True}}, "private P-256"),
        ({"1": {"label": "att"}}, "external sign"),
        ({"8": {"free": True}}, "free slot"),
        ({"2": {"label": "device"}}, "share a label"),
    ],
)
def test_a_template_that_would_leave_a_useless_chip_is_refused_before_anything_is_sent(
    blank: Path, slots: dict, says: str
) -> None:
    broken = template.from_json(json.dumps({"base": "tls-identity", "slots": slots}))
    before = blank.read_bytes()
    device = chip(blank)
    try:
        with pytest.raises(TemplateError, match=says):
            plan.provision(device, broken)
    finally:
        device.close()
    assert blank.read_bytes() == before


def test_a_template_from_a_hex_dump_keeps_the_address_and_shows_the_first_key(
    tmp_path: Path,
) -> None:
    tng = tmp_path / "tng.json"
    create_chip(tng, "ATECC608-TNGTLS")
    dump = tmp_path / "config.hex"
    dump.write_text("# a TNGTLS config zone\n" + config_of(tng).hex(" ").upper() + "\n")
    loaded = template.load(str(dump))
    assert 16 not in loaded.assignments  # the I2C address (0x6A there) is never moved
    assert [(r.label, r.slot) for r in loaded.labelled] == [("device", 0)]
    assert loaded.freeslots == (2, 3, 4)
    dump.write_text("00 11 22")
    with pytest.raises(TemplateError, match="128 bytes"):
        template.load(str(dump))


def test_a_json_slot_table_overrides_a_base_and_names_unknown_keys(tmp_path: Path) -> None:
    spec = {
        "base": "tls-identity",
        "slots": {"5": {"slot_config": "0x2085", "key_config": "0x0073", "free": True}},
    }
    loaded = template.from_json(json.dumps(spec))
    assert loaded.freeslots == (2, 3, 4, 5, 9)
    assert loaded.assignments[20 + 10] == 0x85 and loaded.assignments[96 + 10] == 0x73
    with pytest.raises(TemplateError, match="unknown keys"):
        template.from_json('{"slotz": {}}')
    with pytest.raises(TemplateError, match="slot_config is needed"):
        template.from_json('{"slots": {"3": {"generate": true}}}')


# --- a whole run ---------------------------------------------------------------------------------


def test_a_blank_chip_is_provisioned_and_a_rerun_changes_nothing(blank: Path) -> None:
    before = config_of(blank)
    device = chip(blank)
    try:
        first = plan.provision(device, TLS)
        second = plan.provision(device, TLS)
    finally:
        device.close()
    assert_provisioned(blank, before)
    assert {step for step, _ in first.sent} == {
        "write-config",
        "lock-config",
        "generate-key",
        "write-data",
        "lock-data",
    }
    assert second.sent == []  # idempotent: nothing left to send
    assert second.public_keys == first.public_keys  # the same keys, read back


def test_a_dry_run_sends_only_reads_and_lists_every_command(blank: Path) -> None:
    before = blank.read_bytes()
    device = chip(blank)
    seen: list[int] = []
    original = device.transport.execute

    def recording(command, **kw):
        seen.append(command.opcode)
        return original(command, **kw)

    device.transport.execute = recording
    try:
        dry = plan.provision(device, TLS, dry_run=True)
    finally:
        device.close()
    assert set(seen) == {Opcode.READ}
    assert blank.read_bytes() == before
    opcodes = [built[0].opcode for _, built in dry.sent]
    assert opcodes.count(Opcode.LOCK) == 2 and opcodes.count(Opcode.GENKEY) == 2
    assert plan.describe(dry.sent[-1][1]).startswith("LOCK    param1=0x01")


# --- power loss at every step --------------------------------------------------------------------


def _points(blank: Path, tmp_path: Path) -> list[tuple[str, int]]:
    """(step, n-th command of that step) for every command a full run sends."""
    probe = tmp_path / "probe.json"
    probe.write_bytes(blank.read_bytes())
    names: list[str] = []
    plan.step_hook = names.append
    try:
        device = chip(probe)
        plan.provision(device, TLS)
        device.close()
    finally:
        plan.step_hook = None
    counts: dict[str, int] = {}
    points = []
    for name in names:
        points.append((name, counts.get(name, 0)))
        counts[name] = counts.get(name, 0) + 1
    return points


def test_a_power_loss_before_every_command_then_a_rerun_never_leaves_a_wrong_or_half_locked_chip(
    blank: Path, tmp_path: Path
) -> None:
    chosen = _points(blank, tmp_path)  # before every command a full run sends
    assert len(chosen) > 40
    assert {s for s, _ in chosen} == {
        "write-config",
        "lock-config",
        "generate-key",
        "write-data",
        "lock-data",
    }
    pristine = blank.read_bytes()
    before = config_of(blank)
    target = TLS.apply(before)
    for step, nth in chosen:
        blank.write_bytes(pristine)
        seen = {"n": 0}

        def cut(name: str, step: str = step, nth: int = nth, seen: dict = seen) -> None:
            if name == step:
                if seen["n"] == nth:
                    raise PowerLoss(f"{step} #{nth}")
                seen["n"] += 1

        plan.step_hook = cut
        device = chip(blank)
        try:
            with pytest.raises(PowerLoss):
                plan.provision(device, TLS)
        finally:
            plan.step_hook = None
            device.close()
        after_cut = config_of(blank)
        zone = ConfigZone(after_cut)
        if zone.is_config_locked:  # locked only ever with exactly the planned configuration
            assert [o for o in WRITABLE if after_cut[o] != target[o]] == [], (step, nth)
        else:
            assert not zone.is_data_locked
        device = chip(blank)  # power back on: a new session, the same command again
        try:
            plan.provision(device, TLS)
        finally:
            device.close()
        assert_provisioned(blank, before)


def meddle_then_provision(blank: Path, hook: list, at: str, meddle) -> None:
    """Provision, with ``meddle(other_device)`` run by someone else just before step ``at``;
    the Lock that follows must be refused (its CRC no longer matches)."""

    def once(step: str) -> None:
        if step == at:
            other = chip(blank)
            try:
                meddle(other)
            finally:
                other.close()
            hook.clear()

    hook.append(once)
    device = chip(blank)
    try:
        with pytest.raises(ExecutionError):
            plan.provision(device, TLS)
    finally:
        device.close()


def test_a_configuration_changed_after_it_was_checked_is_not_locked(
    blank: Path, hook: list
) -> None:
    write = cmd.write(Zone.CONFIG, bytes.fromhex("87208720"), block=0, word=5)
    meddle_then_provision(blank, hook, "lock-config", lambda d: d.execute(write, idempotent=True))
    assert not ConfigZone(config_of(blank)).is_config_locked
    device = chip(blank)
    try:
        plan.provision(device, TLS)  # the rerun rewrites and locks the right configuration
    finally:
        device.close()
    assert ConfigZone(config_of(blank)).slot_config(0).raw == 0x2085


def test_data_changed_after_it_was_written_is_not_locked(blank: Path, hook: list) -> None:
    meddle_then_provision(
        blank, hook, "lock-data", lambda d: d.write_bytes(Zone.DATA, 8, 0, b"\x01" * 32)
    )
    assert not ConfigZone(config_of(blank)).is_data_locked


def test_a_chip_locked_with_another_configuration_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    tng = tmp_path / "tng.json"
    create_chip(tng, "ATECC608-TNGTLS")
    before = tng.read_bytes()
    device = chip(tng)
    try:
        with pytest.raises(plan.ProvisionError, match="locked with another configuration"):
            plan.provision(device, TLS)
    finally:
        device.close()
    assert tng.read_bytes() == before
