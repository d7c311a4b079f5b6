"""Decoding of the ATECC608's 128-byte configuration zone (chip §3.1, §3.4, §3.5).

Owns: :class:`ConfigZone` (identity, address, lock state, per-slot SlotConfig/KeyConfig decoded
into small frozen records named after the datasheet bits) and the readable slot table that
``atecc config`` prints.

Must not: talk to a chip (``Device.config_zone()`` reads the bytes and hands them here) or decide
policy; the "who may read/write/use" wording describes what the chip enforces after the data zone
is locked (chip §3.6), which is when it matters.
"""

from __future__ import annotations

from atecc.constants import (
    CFG_AES_ENABLE,
    CFG_CHIP_MODE,
    CFG_CHIP_OPTIONS,
    CFG_I2C_ADDRESS,
    CFG_KEY_CONFIG,
    CFG_LOCK_CONFIG,
    CFG_LOCK_VALUE,
    CFG_REVNUM,
    CFG_SLOT_CONFIG,
    CFG_SLOT_LOCKED,
    CFG_USER_EXTRA,
    CFG_USER_EXTRA_ADD,
    CONFIG_ZONE_SIZE,
    LOCK_UNLOCKED,
    SLOT_COUNT,
    KeyType,
)
from atecc.record import record


def _le16(data: bytes, offset: int) -> int:
    return data[offset] | data[offset + 1] << 8


@record(frozen=True)
class SlotConfig:
    """SlotConfig bits of one slot (chip §3.4)."""

    raw: int
    read_key: int  #: bits 3:0; for private keys: sign/ECDH permission bits
    no_mac: bool  #: bit 4
    limited_use: bool  #: bit 5
    encrypt_read: bool  #: bit 6
    is_secret: bool  #: bit 7
    write_key: int  #: bits 11:8
    write_config: int  #: bits 15:12

    @classmethod
    def from_raw(cls, raw: int) -> SlotConfig:
        return cls(
            raw=raw,
            read_key=raw & 0xF,
            no_mac=bool(raw & 0x10),
            limited_use=bool(raw & 0x20),
            encrypt_read=bool(raw & 0x40),
            is_secret=bool(raw & 0x80),
            write_key=raw >> 8 & 0xF,
            write_config=raw >> 12 & 0xF,
        )

    # Private-key meaning of ReadKey (chip §3.4).
    @property
    def external_sign(self) -> bool:
        return bool(self.read_key & 0x1)

    @property
    def internal_sign(self) -> bool:
        return bool(self.read_key & 0x2)

    @property
    def ecdh(self) -> bool:
        return bool(self.read_key & 0x4)

    @property
    def ecdh_to_next_slot(self) -> bool:
        return bool(self.read_key & 0x8)

    # WriteConfig meaning for GenKey / PrivWrite on private-key slots (chip §3.4).
    @property
    def genkey_allowed(self) -> bool:
        return bool(self.write_config & 0x2)

    @property
    def privwrite_allowed(self) -> bool:
        return bool(self.write_config & 0x4)

    @property
    def write_mode(self) -> str:
        """WriteConfig for the Write command: "always", "pubinvalid", "never" or "encrypt"."""
        wc = self.write_config
        if wc & 0x4:
            return "encrypt"
        if wc & 0x8 or wc & 0x2:
            return "never"
        if wc & 0x1:
            return "pubinvalid"
        return "always"


@record(frozen=True)
class KeyConfig:
    """KeyConfig bits of one slot, 608 layout (chip §3.5)."""

    raw: int
    private: bool  #: bit 0
    pub_info: bool  #: bit 1
    key_type: int  #: bits 4:2 (4 = P-256, 6 = AES, 7 = SHA/data)
    lockable: bool  #: bit 5 (1 = lockable; see the note in chip §3.5)
    req_random: bool  #: bit 6
    req_auth: bool  #: bit 7
    auth_key: int  #: bits 11:8
    persistent_disable: bool  #: bit 12
    rfu: int  #: bit 13
    x509_id: int  #: bits 15:14

    @classmethod
    def from_raw(cls, raw: int) -> KeyConfig:
        return cls(
            raw=raw,
            private=bool(raw & 0x1),
            pub_info=bool(raw & 0x2),
            key_type=raw >> 2 & 0x7,
            lockable=bool(raw & 0x20),
            req_random=bool(raw & 0x40),
            req_auth=bool(raw & 0x80),
            auth_key=raw >> 8 & 0xF,
            persistent_disable=bool(raw & 0x1000),
            rfu=raw >> 13 & 0x1,
            x509_id=raw >> 14 & 0x3,
        )

    @property
    def key_type_name(self) -> str:
        names: dict[int, str] = {
            KeyType.P256: "P-256",
            KeyType.AES: "AES",
            KeyType.SHA_OR_DATA: "SHA/data",
        }
        return names.get(self.key_type, f"reserved({self.key_type})")


@record(frozen=True)
class ChipOptions:
    """ChipOptions, config bytes 90-91 (chip §3.1)."""

    raw: int
    post_on_wake: bool
    io_protection_enabled: bool
    kdf_aes_enabled: bool
    auto_clear_first_fail: bool
    ecdh_protection: int
    kdf_protection: int
    io_protection_key: int

    @classmethod
    def from_raw(cls, raw: int) -> ChipOptions:
        return cls(
            raw=raw,
            post_on_wake=bool(raw & 0x1),
            io_protection_enabled=bool(raw & 0x2),
            kdf_aes_enabled=bool(raw & 0x4),
            auto_clear_first_fail=bool(raw & 0x8),
            ecdh_protection=raw >> 8 & 0x3,
            kdf_protection=raw >> 10 & 0x3,
            io_protection_key=raw >> 12 & 0xF,
        )


@record(frozen=True)
class SlotRow:
    """One line of :meth:`ConfigZone.describe_slots`."""

    slot: int
    key_type: str
    read: str
    write: str
    use: str
    lock: str


class ConfigZone:
    """The 128 configuration bytes, decoded on demand.

    :param data: exactly 128 bytes, as read with four 32-byte config reads.
    """

    def __init__(self, data: bytes) -> None:
        if len(data) != CONFIG_ZONE_SIZE:
            raise ValueError(f"config zone is 128 bytes, got {len(data)}")
        self.data = bytes(data)

    def __repr__(self) -> str:
        return f"ConfigZone(serial={self.serial.hex()}, model={self.model})"

    # -- identity ------------------------------------------------------------------------------
    @property
    def serial(self) -> bytes:
        """9-byte serial number: bytes 0-3 || 8-12 (chip §3.1)."""
        return self.data[0:4] + self.data[8:13]

    @property
    def revision(self) -> bytes:
        """RevNum, bytes 4-7 (``00 00 60 02`` on a 608A)."""
        return self.data[CFG_REVNUM : CFG_REVNUM + 4]

    @property
    def model(self) -> str:
        """ "ATECC608A" when RevNum byte 3 is 0x02, else "ATECC608B" (chip §3.1, PR #282)."""
        return "ATECC608A" if self.revision[3] == 0x02 else "ATECC608B"

    @property
    def i2c_address7(self) -> int:
        """7-bit address from config byte 16 (stored in 8-bit form, chip §1.1)."""
        return self.data[CFG_I2C_ADDRESS] >> 1

    @property
    def effective_i2c_address7(self) -> int:
        """Address the chip answers on after a power cycle: byte 85 replaces byte 16 when
        ChipMode bit 0 is set and byte 85 is non-zero (chip §1.1)."""
        alt = self.data[CFG_USER_EXTRA_ADD]
        if self.data[CFG_CHIP_MODE] & 0x01 and alt:
            return alt >> 1
        return self.i2c_address7

    @property
    def user_extra(self) -> int:
        return self.data[CFG_USER_EXTRA]

    # -- locks ---------------------------------------------------------------------------------
    @property
    def is_config_locked(self) -> bool:
        return self.data[CFG_LOCK_CONFIG] != LOCK_UNLOCKED

    @property
    def is_data_locked(self) -> bool:
        return self.data[CFG_LOCK_VALUE] != LOCK_UNLOCKED

    def slot_locked(self, slot: int) -> bool:
        """SlotLocked bit ``slot`` is 0 (chip §3.1: 1 = not locked)."""
        _check_slot(slot)
        return not _le16(self.data, CFG_SLOT_LOCKED) >> slot & 1

    # -- options -------------------------------------------------------------------------------
    @property
    def aes_enabled(self) -> bool:
        return bool(self.data[CFG_AES_ENABLE] & 0x01)

    @property
    def chip_options(self) -> ChipOptions:
        return ChipOptions.from_raw(_le16(self.data, CFG_CHIP_OPTIONS))

    # -- per slot ------------------------------------------------------------------------------
    def slot_config(self, slot: int) -> SlotConfig:
        _check_slot(slot)
        return SlotConfig.from_raw(_le16(self.data, CFG_SLOT_CONFIG + 2 * slot))

    def key_config(self, slot: int) -> KeyConfig:
        _check_slot(slot)
        return KeyConfig.from_raw(_le16(self.data, CFG_KEY_CONFIG + 2 * slot))

    def is_private_key_slot(self, slot: int) -> bool:
        kc = self.key_config(slot)
        return kc.private and kc.key_type == KeyType.P256

    def describe_slots(self) -> list[SlotRow]:
        """One row per slot: key type, and who may read, write and use it, and lock state."""
        return [self.describe_slot(n) for n in range(SLOT_COUNT)]

    def describe_slot(self, n: int) -> SlotRow:
        """Slot ``n``: key type, and who may read, write and use it, and its lock state."""
        sc, kc = self.slot_config(n), self.key_config(n)
        if kc.private and kc.key_type == KeyType.P256:
            key_type = "P-256 private"
            read = "never (private key)"
            writes = []
            if sc.genkey_allowed:
                writes.append("GenKey")
            if sc.privwrite_allowed:
                writes.append(f"PrivWrite (encrypted, key {sc.write_key})")
            write = ", ".join(writes) or "never"
            uses = [
                name
                for flag, name in (
                    (sc.external_sign, "ext-sign"),
                    (sc.internal_sign, "int-sign"),
                    (sc.ecdh, "ECDH" + (f"→slot {n + 1}" if sc.ecdh_to_next_slot else "")),
                )
                if flag
            ]
            if kc.pub_info:
                uses.append("pubkey")
            use = ", ".join(uses) or "none"
        else:
            if kc.key_type == KeyType.P256:
                key_type = "P-256 public" + (" (validated)" if kc.pub_info else "")
                use = "verify"
            elif kc.key_type == KeyType.AES:
                key_type = "AES"
                use = "AES"
            else:
                key_type = "data" if not sc.is_secret else "SHA/HMAC secret"
                use = "HMAC/MAC" if sc.is_secret and not sc.no_mac else "-"
            if sc.is_secret and sc.encrypt_read:
                read = f"encrypted (key {sc.read_key})"
            elif sc.is_secret:
                read = "never (secret)"
            else:
                read = "clear"
            mode = sc.write_mode
            write = {
                "always": "clear" + (" (32-byte)" if sc.is_secret else ""),
                "pubinvalid": "while not validated",
                "never": "never",
                "encrypt": f"encrypted (key {sc.write_key})",
            }[mode]
        if kc.req_random:
            use += " +ReqRandom"
        if kc.req_auth:
            use += f" +ReqAuth(key {kc.auth_key})"
        if self.slot_locked(n):
            lock = "locked"
        elif kc.lockable:
            lock = "lockable"
        else:
            lock = "-"
        return SlotRow(n, key_type, read, write, use, lock)

    def format_table(self) -> str:
        """The text printed by ``atecc config``: identity, locks, then one line per slot."""
        head = [
            f"model      {self.model} (revision {self.revision.hex()})",
            f"serial     {self.serial.hex().upper()}",
            f"i2c        0x{self.i2c_address7:02X} (7-bit)",
            f"config     {'locked' if self.is_config_locked else 'UNLOCKED'}",
            f"data       {'locked' if self.is_data_locked else 'UNLOCKED'}",
            f"aes        {'enabled' if self.aes_enabled else 'disabled'}",
            "",
        ]
        cols = ("slot", "type", "read", "write", "use", "lock")
        rows = [
            (str(r.slot), r.key_type, r.read, r.write, r.use, r.lock) for r in self.describe_slots()
        ]
        widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += [
            "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        return "\n".join(head + lines)


def _check_slot(slot: int) -> None:
    if not 0 <= slot < SLOT_COUNT:
        raise ValueError(f"slot {slot} outside 0..15")
