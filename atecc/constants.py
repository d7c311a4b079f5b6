"""Datasheet vocabulary for the ATECC608: opcodes, status bytes, zones, word addresses, sizes,
times.

Owns only numbers taken from the chip's public documentation (see ``docs/chip-notes.md``;
``chip §N`` below refers to its sections). No behaviour lives here: the driver (``device.py``)
and the emulator (``emulator/``) both import these names so that the two ends of the wire speak
the same words.
"""

from __future__ import annotations

import enum


class WordAddress(enum.IntEnum):
    """First byte of every host write (chip §1.4)."""

    RESET = 0x00  #: rewind the output-buffer address counter
    SLEEP = 0x01  #: low-power sleep; all volatile state is lost
    IDLE = 0x02  #: idle; TempKey, RNG seed and SHA context are kept
    COMMAND = 0x03  #: the following bytes go into the input FIFO


class Opcode(enum.IntEnum):
    """Command opcodes (chip §4.0)."""

    READ = 0x02
    MAC = 0x08
    WRITE = 0x12
    GENDIG = 0x15
    NONCE = 0x16
    LOCK = 0x17
    RANDOM = 0x1B
    DERIVEKEY = 0x1C
    UPDATEEXTRA = 0x20
    COUNTER = 0x24
    CHECKMAC = 0x28
    INFO = 0x30
    GENKEY = 0x40
    SIGN = 0x41
    ECDH = 0x43
    VERIFY = 0x45
    PRIVWRITE = 0x46
    SHA = 0x47
    AES = 0x51
    KDF = 0x56
    SELFTEST = 0x77
    SECUREBOOT = 0x80


class Status(enum.IntEnum):
    """Single-byte status codes carried in a 4-byte group (chip §2)."""

    SUCCESS = 0x00
    CHECKMAC_VERIFY_MISCOMPARE = 0x01  #: a normal Verify/CheckMac outcome, not a fault
    PARSE_ERROR = 0x03
    ECC_FAULT = 0x05
    SELFTEST_ERROR = 0x07
    HEALTH_TEST_ERROR = 0x08
    EXECUTION_ERROR = 0x0F
    WAKE_OK = 0x11
    WATCHDOG_ABOUT_TO_EXPIRE = 0xEE
    CRC_ERROR = 0xFF  #: CRC mismatch or malformed group; nothing executed


class Zone(enum.IntEnum):
    """Zone selector in Read/Write/Lock param1 bits 1:0 (chip §3.3)."""

    CONFIG = 0
    OTP = 1
    DATA = 2


#: Param1 bit 7 for Read/Write: 32-byte access instead of 4-byte (chip §3.3).
ZONE_READWRITE_32 = 0x80
#: Param1 bit 6 for Write: data is encrypted and followed by a MAC (chip §3.3).
ZONE_ENCRYPTED = 0x40


class KeyType(enum.IntEnum):
    """KeyConfig bits 4:2 (chip §3.5)."""

    P256 = 4
    AES = 6
    SHA_OR_DATA = 7


# --- Packet sizes (chip §1.5, §1.6) -------------------------------------------------------------
COMMAND_HEADER_SIZE = 5  #: count, opcode, param1, param2 (LE16)
CRC_SIZE = 2
MIN_COMMAND_COUNT = 7
MIN_GROUP_COUNT = 4
MAX_GROUP_COUNT = 155
STATUS_GROUP_COUNT = 4

# --- Memory layout (chip §3.1, §3.2) ------------------------------------------------------------
CONFIG_ZONE_SIZE = 128
OTP_ZONE_SIZE = 64
BLOCK_SIZE = 32
WORD_SIZE = 4
SLOT_COUNT = 16


def slot_size(slot: int) -> int:
    """Size in bytes of data-zone slot ``slot`` (chip §3.2): 36 for 0-7, 416 for 8, 72 for 9-15."""
    if not 0 <= slot < SLOT_COUNT:
        raise ValueError(f"slot {slot} out of range 0..15")
    if slot < 8:
        return 36
    if slot == 8:
        return 416
    return 72


# Config-zone byte offsets (chip §3.1).
CFG_SN03 = 0
CFG_REVNUM = 4
CFG_SN48 = 8
CFG_AES_ENABLE = 13
CFG_I2C_ENABLE = 14
CFG_I2C_ADDRESS = 16
CFG_COUNT_MATCH = 18
CFG_CHIP_MODE = 19
CFG_SLOT_CONFIG = 20
CFG_COUNTER0 = 52
CFG_COUNTER1 = 60
CFG_USE_LOCK = 68
CFG_VOLATILE_KEY_PERMISSION = 69
CFG_SECURE_BOOT = 70
CFG_USER_EXTRA = 84
CFG_USER_EXTRA_ADD = 85
CFG_LOCK_VALUE = 86
CFG_LOCK_CONFIG = 87
CFG_SLOT_LOCKED = 88
CFG_CHIP_OPTIONS = 90
CFG_X509_FORMAT = 92
CFG_KEY_CONFIG = 96

LOCK_UNLOCKED = 0x55  #: LockValue/LockConfig byte while the zone is unlocked
LOCK_LOCKED = 0x00

SIGNATURE_SIZE = 64  #: R||S, big-endian (chip §5.2)
PUBLIC_KEY_SIZE = 64  #: X||Y, big-endian, no 0x04 prefix (chip §5.1)
DIGEST_SIZE = 32

# --- Timing (chip §1.3, §1.8, §4.0) -------------------------------------------------------------
WAKE_LOW_S = 60e-6  #: tWLO
WAKE_HIGH_S = 1.5e-3  #: tWHI: wait after the wake pulse before talking to the chip
WATCHDOG_S = 1.3  #: tWATCHDOG typical; 0.7 s min, 1.7 s max
WATCHDOG_MIN_S = 0.7

#: Worst-case execution time in ms per opcode on a 608 at clock divider M0 (chip §4.0).
EXEC_TIME_MAX_MS: dict[Opcode, int] = {
    Opcode.AES: 27,
    Opcode.CHECKMAC: 40,
    Opcode.COUNTER: 25,
    Opcode.DERIVEKEY: 50,
    Opcode.ECDH: 75,
    Opcode.GENDIG: 25,
    Opcode.GENKEY: 115,
    Opcode.INFO: 5,
    Opcode.KDF: 165,
    Opcode.LOCK: 35,
    Opcode.MAC: 55,
    Opcode.NONCE: 20,
    Opcode.PRIVWRITE: 50,
    Opcode.RANDOM: 23,
    Opcode.READ: 5,
    Opcode.SECUREBOOT: 80,
    Opcode.SELFTEST: 250,
    Opcode.SHA: 36,
    Opcode.SIGN: 115,
    Opcode.UPDATEEXTRA: 10,
    Opcode.VERIFY: 105,
    Opcode.WRITE: 45,
}


#: ChipMode (config byte 19) bits 7:3: the clock divider (chip §3.1; cryptoauthlib's
#: ATCA_CHIPMODE_CLOCK_DIV_*). The chip is slower at M1 and M2; Sign goes from 115 to 665 ms.
CLOCK_DIVIDER_MASK = 0xF8
CLOCK_M0, CLOCK_M1, CLOCK_M2 = 0x00, 0x28, 0x68

#: Worst-case times at M1 and M2 where they differ from M0 (cryptoauthlib's
#: device_execution_time_608_m1/_m2, ``lib/calib/calib_execution.c``).
_SLOWER_MS: dict[int, dict[Opcode, int]] = {
    CLOCK_M1: {
        Opcode.ECDH: 172,
        Opcode.GENDIG: 35,
        Opcode.GENKEY: 215,
        Opcode.SECUREBOOT: 160,
        Opcode.SELFTEST: 625,
        Opcode.SHA: 42,
        Opcode.SIGN: 220,
        Opcode.VERIFY: 295,
    },
    CLOCK_M2: {
        Opcode.ECDH: 531,
        Opcode.GENDIG: 35,
        Opcode.GENKEY: 653,
        Opcode.SECUREBOOT: 480,
        Opcode.SELFTEST: 2324,
        Opcode.SHA: 75,
        Opcode.SIGN: 665,
        Opcode.VERIFY: 1085,
    },
}


def _table(divider: int) -> tuple[float, ...]:
    ms = {**EXEC_TIME_MAX_MS, **_SLOWER_MS.get(divider, {})}
    return tuple(
        ms[Opcode(op)] / 1000.0 if op in Opcode._value2member_map_ else 0.005 for op in range(256)
    )


#: exec_time_max_s() by divider and opcode byte, precomputed: the transport looks it up twice per
#: command, and building an ``Opcode`` enum member per lookup cost more than the rest.
_EXEC_TIME_S: dict[int, tuple[float, ...]] = {d: _table(d) for d in (CLOCK_M0, CLOCK_M1, CLOCK_M2)}
#: Per opcode the slowest of the known dividers: the bound to use when the divider is unknown.
EXEC_TIME_SLOWEST_S: tuple[float, ...] = tuple(map(max, *_EXEC_TIME_S.values()))


def known_clock_divider(chip_mode: int) -> bool:
    """True when ChipMode's divider is one of the documented M0, M1, M2."""
    return chip_mode & CLOCK_DIVIDER_MASK in _EXEC_TIME_S


def exec_time_max_s(opcode: int, chip_mode: int | None = CLOCK_M0) -> float:
    """Worst-case execution time in seconds for ``opcode`` on a chip whose ChipMode byte is
    ``chip_mode`` (only bits 7:3 matter); None or an undocumented divider give the slowest known
    time. Unknown opcodes get 5 ms."""
    if not 0 <= opcode <= 0xFF:
        return 0.005
    if chip_mode is None:
        return EXEC_TIME_SLOWEST_S[opcode]
    table = _EXEC_TIME_S.get(chip_mode & CLOCK_DIVIDER_MASK)
    return (table or EXEC_TIME_SLOWEST_S)[opcode]
