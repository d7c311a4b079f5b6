"""Factory provisioning of emulated chips: config images, keys, certificates (chip §6).

Owns the two device profiles and writes a fresh state file for one of them:

* ``ATECC608-TNGTLS`` — Trust&GO TLS: the config zone of chip §6.3 byte for byte except a fresh
  serial number and the RevNum of the chosen revision; config and data zones locked; P-256 private
  keys generated into slot 0 (device key, certified) and slot 1 (internal-sign key); slots 2-4
  empty (GenKey may create them); device and signer compressed certificates in slots 10 and 12,
  the signer public key (padded) in slot 11 and the template code in OTP bytes 0-7 (§6.8), issued
  by a fresh project root CA whose certificate is written beside the state file.
* ``ATECC608`` — a blank part: address 0xC0, both zones unlocked, no keys.

Certificate building is ``atecc.certs.factory``'s job; this module only places its output.
"""

from __future__ import annotations

import os
from pathlib import Path

from atecc.constants import CONFIG_ZONE_SIZE, OTP_ZONE_SIZE
from atecc.emulator._cmd_ecc import new_scalar, public_key_of
from atecc.emulator.state import ChipState, StateFile

TNGTLS = "ATECC608-TNGTLS"
BLANK = "ATECC608"
DEVICES = (TNGTLS, BLANK)

REVNUM = {"A": bytes.fromhex("00006002"), "B": bytes.fromhex("00006003")}

#: Config zone of a real ATECC608A-TNGTLS (chip §6.3); SN and RevNum are replaced per chip.
TNGTLS_CONFIG = bytes.fromhex(
    "01 23 CF E1 00 00 60 02 EF 17 F0 B0 01 01 29 00"
    "6A 00 00 01 85 00 82 00 85 20 85 20 85 20 8F 46"
    "8F 0F 9F 8F 0F 0F 8F 0F 0F 8F 0F 8F 0F 8F 0F 0F"
    "0D 1F 0F 0F FF FF FF FF 00 00 00 00 FF FF FF FF"
    "00 00 00 00 00 00 03 F7 00 69 76 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 FF FF 0E 60 00 00 00 00"
    "53 00 53 00 73 00 73 00 73 00 38 00 7C 00 1C 00"
    "3C 00 1A 00 1C 00 10 00 1C 00 30 00 12 00 30 00"
)


def _blank_config() -> bytes:
    """Generic factory-like config of an unprovisioned ATECC608 (chip §3.1, §6.3 "Generic").

    Facts from the spec: I2C address 0xC0, I2C_Enable bit 0, both lock bytes 0x55, SlotLocked
    FF FF, counters at their "value 0" encoding, SN[8] = 0xEE, RevNum 608B. **Our choice** (the real
    factory values are not public): AES_Enable = 0x01; ChipMode 0x00; ChipOptions 0x0000;
    slots 0-7 SlotConfig 0x2087 (secret; external sign, internal sign, ECDH; GenKey allowed after
    data lock) with KeyConfig 0x0033 (P-256 private, PubInfo, lockable); slot 8 0x0F0F/0x003C
    (clear data, lockable); slots 9-15 0x0F0F/0x0030 (clear public-key slots, lockable);
    everything else zero.
    """
    cfg = bytearray(CONFIG_ZONE_SIZE)
    cfg[0:2] = b"\x01\x23"
    cfg[4:8] = REVNUM["B"]
    cfg[12] = 0xEE
    cfg[13] = 0x01  # our choice: AES enabled
    cfg[14] = 0x01  # I2C interface
    cfg[16] = 0xC0
    for n in range(16):
        if n < 8:
            sc, kc = 0x2087, 0x0033
        elif n == 8:
            sc, kc = 0x0F0F, 0x003C
        else:
            sc, kc = 0x0F0F, 0x0030
        cfg[20 + 2 * n : 22 + 2 * n] = sc.to_bytes(2, "little")
        cfg[96 + 2 * n : 98 + 2 * n] = kc.to_bytes(2, "little")
    cfg[52:60] = bytes.fromhex("FFFFFFFF00000000")
    cfg[60:68] = bytes.fromhex("FFFFFFFF00000000")
    cfg[86] = cfg[87] = 0x55
    cfg[88] = cfg[89] = 0xFF
    return bytes(cfg)


def root_ca_path(state_path: str | os.PathLike[str]) -> Path:
    """Trust&GO root CA certificate beside the state: ``chip0.json`` → ``chip0.root-ca.pem``."""
    return Path(state_path).with_suffix(".root-ca.pem")


def _new_serial(last: int) -> bytes:
    return b"\x01\x23" + os.urandom(6) + bytes((last,))


def _place_serial(cfg: bytearray, serial: bytes) -> None:
    if len(serial) != 9 or serial[:2] != b"\x01\x23":
        raise ValueError("serial must be 9 bytes starting 01 23")
    cfg[0:4] = serial[0:4]
    cfg[8:13] = serial[4:9]


def create_chip(
    state_path: str | os.PathLike[str],
    device: str = TNGTLS,
    *,
    serial: bytes | None = None,
    revision: str = "A",
) -> ChipState:
    """Provision a new emulated chip and write its state file (mode 0600).

    :param device: ``"ATECC608-TNGTLS"`` or ``"ATECC608"``
    :param serial: 9-byte serial (``01 23 …``); fresh random bytes by default
    :param revision: ``"A"`` (RevNum 00 00 60 02) or ``"B"`` (00 00 60 03); TNGTLS only — the
        blank profile is always a 608B
    :raises ValueError: unknown device or revision, malformed serial
    :raises atecc.emulator.state.StateFileError: the state file already exists
    """
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if revision not in REVNUM:
        raise ValueError("revision must be 'A' or 'B'")
    if device == BLANK:
        cfg = bytearray(_blank_config())
        _place_serial(cfg, serial if serial is not None else _new_serial(0xEE))
        state = ChipState(profile=BLANK, config=cfg)
        StateFile.create(state_path, state)
        return state

    cfg = bytearray(TNGTLS_CONFIG)
    if serial is None:
        serial = _new_serial(0x01)  # SN[8] = 0x01 as observed on TNG parts (§6.1)
    _place_serial(cfg, serial)
    cfg[4:8] = REVNUM[revision]
    state = ChipState(profile=TNGTLS, config=cfg, otp=bytearray(OTP_ZONE_SIZE))
    for slot in (0, 1):
        scalar = new_scalar(os.urandom)
        state.slots[slot][:] = bytes(4) + scalar
        state.key_valid[slot] = True
    device_public = public_key_of(bytes(state.slots[0][4:36]))

    from atecc.certs.factory import make_tng_chain  # the cert builder is another module's job

    certs = make_tng_chain(device_public, bytes(serial))
    state.slots[10][:] = certs.device_compressed
    signer = certs.signer_public_key
    state.slots[11][:] = bytes(4) + signer[:32] + bytes(4) + signer[32:]
    state.slots[12][:] = certs.signer_compressed
    state.otp[0:8] = certs.otp_code
    StateFile.create(state_path, state)
    pem_path = root_ca_path(state_path)
    pem_path.write_bytes(certs.root_ca_pem)
    os.chmod(pem_path, 0o644)
    return state
