"""The 72-byte compressed certificate of Trust&GO chips (chip §6.5).

Owns: the byte layout (signature, encoded dates, signer ID, template/chain IDs, serial-number
source, format version) and the date codec. Knows nothing about DER or templates; turning a
compressed certificate into X.509 is :mod:`atecc.certs.rebuild`'s job.

Layout::

    0..31   signature R (big-endian)
    32..63  signature S
    64..66  encoded dates: issue year-2000 (5) | month (4) | day (5) | hour (5) | expire years (5)
    67..68  signer ID
    69      template ID (bits 7:4) | chain ID (bits 3:0)
    70      serial-number source (bits 7:4) | format version (bits 3:0)
    71      v0: reserved; v1/v2: issue-year bits 6:5 (7:6), expire-years bits 6:5 (5:4)

Dates have hour granularity; minutes and seconds are always zero. The expiry is not stored as a
date but as a number of years after the issue date (0 = never expires).
"""

from __future__ import annotations

import enum
from datetime import datetime

from atecc.record import record

COMPRESSED_CERT_SIZE = 72
SIGNATURE_SIZE = 64
SIGNER_ID_SIZE = 2

#: Format versions (byte 70 bits 3:0). Version 1 widens the year fields to 7 bits using byte 71;
#: version 2 (larger curves) uses the same date layout as version 1.
FORMAT_V0 = 0
FORMAT_V1 = 1
FORMAT_V2 = 2
MAX_FORMAT_VERSION = FORMAT_V2

#: Dates without expiry get this GeneralizedTime value (RFC 5280 §4.1.2.5 "no well-defined
#: expiration date"), as cryptoauthlib does for expire years = 0.
NO_EXPIRY_GENERALIZED_TIME = "99991231235959Z"


class CertificateError(ValueError):
    """A compressed certificate, template or stored certificate is malformed or inconsistent."""


class SnSource(enum.IntEnum):
    """How a certificate's serial number is obtained (byte 70 bits 7:4; chip §6.5)."""

    STORED = 0x0  #: stored in full elsewhere on the chip
    STORED_DYNAMIC = 0x7  #: stored, with a length byte
    DEVICE_SN = 0x8  #: 0x40 followed by the 9-byte device serial number
    SIGNER_ID = 0x9  #: 0x40 followed by the signer ID
    PUB_KEY_HASH = 0xA  #: SHA-256(X||Y || dates [|| byte71 & 0xF0]), 0x40-prefixed (all TNGTLS)
    DEVICE_SN_HASH = 0xB  #: same with the 9-byte device SN instead of the public key


def _check_date_range(issue: datetime, expire_years: int, version: int) -> None:
    year_bits = 5 if version == FORMAT_V0 else 7
    limit = 1 << year_bits
    if not 0 <= issue.year - 2000 < limit:
        raise CertificateError(
            f"issue year {issue.year} outside 2000..{2000 + limit - 1} for format version {version}"
        )
    if not 0 <= expire_years < limit:
        raise CertificateError(
            f"expire years {expire_years} outside 0..{limit - 1} for format version {version}"
        )


def encode_dates(issue: datetime, expire_years: int, version: int = FORMAT_V0) -> tuple[bytes, int]:
    """Encode an issue date and validity period.

    :param issue: issue date; only year, month, day and hour are kept (the format has no minutes).
    :param expire_years: whole years of validity, 0 = no expiry.
    :param version: format version; 1 and 2 allow years up to 2127 and 127 years of validity.
    :returns: the 3 bytes for offsets 64..66, and the high bits for byte 71 (bits 7:4; 0 for v0).
    :raises CertificateError: a value does not fit the format.
    """
    if version > MAX_FORMAT_VERSION:
        raise CertificateError(f"unknown compressed-certificate format version {version}")
    _check_date_range(issue, expire_years, version)
    year = issue.year - 2000
    packed = (
        (year & 0x1F) << 19
        | issue.month << 15
        | issue.day << 10
        | issue.hour << 5
        | (expire_years & 0x1F)
    )
    high = 0
    if version != FORMAT_V0:
        # Bits 6:5 of both year fields live in the top nibble of byte 71.
        high = ((year >> 5) & 0x3) << 6 | ((expire_years >> 5) & 0x3) << 4
    return packed.to_bytes(3, "big"), high


def decode_dates(encoded: bytes, byte71: int = 0, version: int = FORMAT_V0) -> tuple[datetime, int]:
    """Inverse of :func:`encode_dates`: ``(issue date, expire years)``.

    :raises CertificateError: the fields do not form a valid date.
    """
    if len(encoded) != 3:
        raise CertificateError("encoded dates are 3 bytes")
    packed = int.from_bytes(encoded, "big")
    year = packed >> 19 & 0x1F
    expire_years = packed & 0x1F
    if version != FORMAT_V0:
        year |= (byte71 >> 6 & 0x3) << 5
        expire_years |= (byte71 >> 4 & 0x3) << 5
    try:
        issue = datetime(2000 + year, packed >> 15 & 0xF, packed >> 10 & 0x1F, packed >> 5 & 0x1F)
    except ValueError as exc:
        raise CertificateError(f"compressed certificate holds an invalid date: {exc}") from exc
    return issue, expire_years


def utc_time(issue: datetime) -> str:
    """``YYMMDDhh0000Z``: the 13-character UTCTime the templates use for the issue date."""
    return f"{issue.year % 100:02d}{issue.month:02d}{issue.day:02d}{issue.hour:02d}0000Z"


def expire_generalized_time(issue: datetime, expire_years: int) -> str:
    """``YYYYMMDDhh0000Z`` for issue + ``expire_years`` (same month, day, hour), or no-expiry.

    The year is added field-wise, as the chip's encoding defines it; an issue date of 29 February
    therefore expires on "29 February" of a possibly non-leap year, exactly as the original tooling
    writes it, which keeps rebuilt certificates byte-identical to what was signed.
    """
    if expire_years == 0:
        return NO_EXPIRY_GENERALIZED_TIME
    year = issue.year + expire_years
    return f"{year:04d}{issue.month:02d}{issue.day:02d}{issue.hour:02d}0000Z"


@record(frozen=True)
class CompressedCert:
    """One decoded 72-byte compressed certificate.

    ``signature`` is R||S (64 bytes, big-endian); ``signer_id`` is 2 bytes. ``reserved`` keeps
    the low nibble of byte 71 (and the whole byte for format 0) so that ``to_bytes`` round-trips
    bytes we do not interpret.
    """

    signature: bytes
    issue_date: datetime
    expire_years: int
    signer_id: bytes
    template_id: int
    chain_id: int
    sn_source: int
    format_version: int = FORMAT_V0
    reserved: int = 0

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_SIZE:
            raise CertificateError("signature must be 64 bytes (R||S)")
        if len(self.signer_id) != SIGNER_ID_SIZE:
            raise CertificateError("signer ID must be 2 bytes")
        for name in ("template_id", "chain_id", "sn_source", "format_version"):
            if not 0 <= getattr(self, name) <= 0xF:
                raise CertificateError(f"{name} must fit 4 bits")
        if self.format_version > MAX_FORMAT_VERSION:
            raise CertificateError(f"unknown format version {self.format_version}")
        if self.issue_date.minute or self.issue_date.second or self.issue_date.microsecond:
            raise CertificateError("issue date must be on the hour (the format has no minutes)")
        _check_date_range(self.issue_date, self.expire_years, self.format_version)
        if self.format_version != FORMAT_V0 and self.reserved & 0xF0:
            raise CertificateError("format 1/2 use byte 71 bits 7:4 for the years")

    @property
    def encoded_dates(self) -> bytes:
        """Bytes 64..66."""
        return encode_dates(self.issue_date, self.expire_years, self.format_version)[0]

    @property
    def byte71(self) -> int:
        """Byte 71 as stored (year high bits for v1/v2, plus the reserved bits)."""
        return encode_dates(self.issue_date, self.expire_years, self.format_version)[1] | (
            self.reserved
        )

    @property
    def signer_id_hex(self) -> str:
        """The 4 uppercase hex characters certificates show for the signer ID."""
        return self.signer_id.hex().upper()

    @property
    def r(self) -> int:
        return int.from_bytes(self.signature[:32], "big")

    @property
    def s(self) -> int:
        return int.from_bytes(self.signature[32:], "big")

    def to_bytes(self) -> bytes:
        """The 72 bytes as stored in the chip's certificate slot."""
        return (
            self.signature
            + self.encoded_dates
            + self.signer_id
            + bytes(
                (
                    self.template_id << 4 | self.chain_id,
                    self.sn_source << 4 | self.format_version,
                    self.byte71,
                )
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CompressedCert:
        """Parse 72 bytes (e.g. slot 10 or 12).

        :raises CertificateError: wrong length, unknown format version or an invalid date.
        """
        if len(data) != COMPRESSED_CERT_SIZE:
            raise CertificateError(
                f"a compressed certificate is {COMPRESSED_CERT_SIZE} bytes, got {len(data)}"
            )
        version = data[70] & 0xF
        if version > MAX_FORMAT_VERSION:
            raise CertificateError(f"unknown compressed-certificate format version {version}")
        issue, expire_years = decode_dates(bytes(data[64:67]), data[71], version)
        reserved = data[71] if version == FORMAT_V0 else data[71] & 0x0F
        return cls(
            signature=bytes(data[:64]),
            issue_date=issue,
            expire_years=expire_years,
            signer_id=bytes(data[67:69]),
            template_id=data[69] >> 4,
            chain_id=data[69] & 0xF,
            sn_source=data[70] >> 4,
            format_version=version,
            reserved=reserved,
        )
