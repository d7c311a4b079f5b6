"""Typed errors of the ATECC608 driver.

Tree::

    AteccError
    ├── TransportError          the bus failed (open, NACK after retries, I/O error)
    │   ├── NoDevice            nothing answers at the address (wake never answered)
    │   └── BusTimeout          the chip stayed busy past the command's time limit
    ├── ResponseCrcError        host-side CRC check of a reply failed after retries
    ├── ResponseFormatError     a reply whose COUNT/length makes no sense
    └── StatusError             the chip answered with a status byte (one subclass per byte)
        ├── VerifyMiscompare      0x01
        ├── ParseError            0x03
        ├── EccFault              0x05
        ├── SelfTestError         0x07
        ├── HealthTestError       0x08
        ├── ExecutionError        0x0F
        ├── WatchdogAboutToExpire 0xEE
        └── ChipCrcError          0xFF (the chip saw a bad CRC in our command)

``status_error(code)`` gives the right subclass instance for a status byte. Nothing here talks to
hardware; both the driver and the CLI catch these.
"""

from __future__ import annotations

from atecc.constants import Status


class AteccError(Exception):
    """Base of every error the driver raises."""


class TransportError(AteccError):
    """The I2C transfer itself failed (device node missing, repeated NACK, I/O error)."""


class NoDevice(TransportError):
    """No chip answered the wake sequence at the configured bus and address."""


class BusTimeout(TransportError):
    """The chip kept NACKing reads past the command's execution-time limit."""


class ResponseCrcError(AteccError):
    """The reply's CRC did not match, even after re-reading and resending."""


class ResponseFormatError(AteccError):
    """The reply's COUNT byte is impossible or not what the command produces."""


class StatusError(AteccError):
    """The chip answered with a status group instead of the command's output."""

    status: int = -1
    description = "unknown status"

    def __init__(self, status: int | None = None, message: str | None = None) -> None:
        if status is not None:
            self.status = status
        text = message or self.description
        super().__init__(f"chip status 0x{self.status:02X}: {text}")


class VerifyMiscompare(StatusError):
    """Verify or CheckMac found that the signature or MAC does not match (a normal outcome)."""

    status = Status.CHECKMAC_VERIFY_MISCOMPARE
    description = "signature or MAC does not match"


class ParseError(StatusError):
    """The command's length, opcode or parameters are illegal regardless of device state."""

    status = Status.PARSE_ERROR
    description = "parse error (illegal opcode, parameter or length)"


class EccFault(StatusError):
    """The ECC computation produced an invalid result; retrying usually succeeds."""

    status = Status.ECC_FAULT
    description = "ECC fault"


class SelfTestError(StatusError):
    """The chip is in the self-test failure state."""

    status = Status.SELFTEST_ERROR
    description = "self-test failure state"


class HealthTestError(StatusError):
    """The random number generator's health test failed."""

    status = Status.HEALTH_TEST_ERROR
    description = "RNG health test failed"


class ExecutionError(StatusError):
    """Well-formed but not allowed now: locks, slot permissions, TempKey state, counter limit."""

    status = Status.EXECUTION_ERROR
    description = "execution error (not allowed in the current state or by the slot's config)"


class WatchdogAboutToExpire(StatusError):
    """Not enough watchdog time was left to run the command; it was not executed."""

    status = Status.WATCHDOG_ABOUT_TO_EXPIRE
    description = "watchdog about to expire; command not executed"


class ChipCrcError(StatusError):
    """The chip found a bad CRC or a malformed group in the command it received."""

    status = Status.CRC_ERROR
    description = "the chip received a corrupted command"


_BY_STATUS: dict[int, type[StatusError]] = {
    cls.status: cls
    for cls in (
        VerifyMiscompare,
        ParseError,
        EccFault,
        SelfTestError,
        HealthTestError,
        ExecutionError,
        WatchdogAboutToExpire,
        ChipCrcError,
    )
}


def status_error(status: int) -> StatusError:
    """The exception for a non-success status byte; unknown bytes give a plain StatusError."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        return StatusError(status, "unknown status byte")
    return cls()
