"""Fault injection for the emulated chip (chip §7.2: "provide hooks rather than model causes").

Owns the pending-fault counters; the chip model (``chip.py``) consumes them at the exact points
where a real part would misbehave. Nothing here is persisted: faults belong to one bus instance.

Self-test failures are modelled as *broken hardware*: :meth:`Faults.selftest_fail` breaks the
given test units and puts the chip into the failure state at once (or right after the next wake if
it is not awake). Re-running SelfTest on a broken unit fails again, so the failure state survives
SelfTest until :meth:`Faults.clear_selftest` "repairs" the units; after that, a SelfTest of those
units passes and clears their bits (chip §4.14). A wake also clears the failure register (§1.9),
unless POST is enabled in ChipOptions, in which case the wake response is ``04 07 40 C2``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atecc.emulator.chip import Chip

#: SelfTest bitmap bits that name test units: RNG 0x01, ECDSA sign/verify 0x04 (the TNG
#: datasheets' bit 2, cryptoauthlib's SELFTEST_MODE_ECDSA_SIGN_VERIFY), ECDH 0x08, AES 0x10,
#: SHA 0x20. Bit 1 is in cryptoauthlib's "all" (0x3B) and real parts accept it; what it tests is
#: not public [U], so it is a second name of the ECDSA unit. Bits 7:6 are reserved.
SELFTEST_UNITS = 0x3F
#: The two bits that name the ECDSA unit.
SELFTEST_ECDSA = 0x06


def same_units(mask: int) -> int:
    """``mask`` with both ECDSA bits set when either is."""
    return mask | SELFTEST_ECDSA if mask & SELFTEST_ECDSA else mask


class Faults:
    """Pending faults for one :class:`~atecc.emulator.chip.Chip`."""

    def __init__(self) -> None:
        self._chip: Chip | None = None
        #: responses whose first read pass gets a wrong CRC
        self.crc_corruptions = 0
        #: i2c_rdwr calls (to the chip's address) that fail with NACK without reaching the chip
        self.nacks = 0
        #: Sign / GenKey-create / ECDH / Verify executions that answer 0x05 instead of running
        self.ecc_faults = 0
        #: test units that fail whenever SelfTest (or POST) runs them
        self.selftest_broken = 0

    def attach(self, chip: Chip) -> None:
        self._chip = chip

    def corrupt_next_crc(self, n: int = 1) -> None:
        """The next ``n`` command responses read back with a wrong CRC on their first read pass.

        A rewind (word address 0x00) followed by a re-read returns the true bytes, as a transient
        bus glitch would. The wake response ``04 11 33 43`` is not affected.
        """
        self.crc_corruptions += n

    def nack_next(self, n: int = 1) -> None:
        """The next ``n`` ``i2c_rdwr`` calls addressed to the chip raise NACK and have no effect.

        Wake pulses (writes to address 0x00) are not counted: a wake is electrical, not addressed.
        """
        self.nacks += n

    def expire_watchdog(self) -> None:
        """The watchdog fires now: the chip falls asleep and loses all volatile state."""
        if self._chip is not None:
            self._chip.watchdog_expire()

    def ecc_fault_next(self, n: int = 1) -> None:
        """The next ``n`` Sign / GenKey-create / ECDH / Verify answer 0x05 without executing."""
        self.ecc_faults += n

    def selftest_fail(self, mask: int) -> None:
        """Break the self-test units in ``mask`` (SelfTest bitmap bits) and enter failure state."""
        mask &= SELFTEST_UNITS
        self.selftest_broken |= same_units(mask)
        if self._chip is not None:
            self._chip.selftest_failure(mask)

    def clear_selftest(self) -> None:
        """Repair all units: the next SelfTest of a failed unit passes and clears its bit."""
        self.selftest_broken = 0

    # -- consumption (called by the chip) -------------------------------------------------------
    def take_ecc_fault(self) -> bool:
        if self.ecc_faults > 0:
            self.ecc_faults -= 1
            return True
        return False

    def take_nack(self) -> bool:
        if self.nacks > 0:
            self.nacks -= 1
            return True
        return False

    def take_crc_corruption(self) -> bool:
        if self.crc_corruptions > 0:
            self.crc_corruptions -= 1
            return True
        return False
