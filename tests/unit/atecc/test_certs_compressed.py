"""Compressed certificate codec (chip §6.5): date vectors, field packing, round trips."""

from __future__ import annotations

from datetime import datetime

import pytest

from atecc.certs.compressed import (
    FORMAT_V0,
    FORMAT_V1,
    NO_EXPIRY_GENERALIZED_TIME,
    CertificateError,
    CompressedCert,
    SnSource,
    decode_dates,
    encode_dates,
    expire_generalized_time,
    utc_time,
)

# (issue, expire years, format version, bytes 64..66, byte 71 high bits) — every vector of §6.5.
DATE_VECTORS = [
    (datetime(2018, 11, 8, 5), 28, FORMAT_V0, "95A0BC", 0x00),
    (datetime(2018, 11, 8, 4), 31, FORMAT_V0, "95A09F", 0x00),
    (datetime(2024, 1, 1, 0), 0, FORMAT_V0, "C08400", 0x00),
    (datetime(2031, 12, 31, 23), 31, FORMAT_V0, "FE7EFF", 0x00),
    (datetime(2040, 6, 15, 12), 40, FORMAT_V1, "433D88", 0x50),
]


@pytest.mark.parametrize(("issue", "years", "version", "encoded", "high"), DATE_VECTORS)
def test_encode_dates_matches_spec_vectors(
    issue: datetime, years: int, version: int, encoded: str, high: int
) -> None:
    assert encode_dates(issue, years, version) == (bytes.fromhex(encoded), high)


@pytest.mark.parametrize(("issue", "years", "version", "encoded", "high"), DATE_VECTORS)
def test_decode_dates_inverts_spec_vectors(
    issue: datetime, years: int, version: int, encoded: str, high: int
) -> None:
    assert decode_dates(bytes.fromhex(encoded), high, version) == (issue, years)


def test_v0_rejects_years_it_cannot_hold() -> None:
    with pytest.raises(CertificateError, match="issue year"):
        encode_dates(datetime(2032, 1, 1), 1, FORMAT_V0)
    with pytest.raises(CertificateError, match="expire years"):
        encode_dates(datetime(2030, 1, 1), 32, FORMAT_V0)
    encode_dates(datetime(2127, 1, 1), 127, FORMAT_V1)  # v1 widens both to 7 bits


def test_decode_rejects_impossible_date() -> None:
    # month 0 is not a month
    with pytest.raises(CertificateError, match="invalid date"):
        decode_dates(bytes.fromhex("C00400"))


def test_time_strings() -> None:
    issue = datetime(2024, 3, 9, 7)
    assert utc_time(issue) == "240309070000Z"
    assert expire_generalized_time(issue, 28) == "20520309070000Z"
    assert expire_generalized_time(issue, 0) == NO_EXPIRY_GENERALIZED_TIME == "99991231235959Z"


def _sample(**changes: object) -> CompressedCert:
    fields: dict[str, object] = {
        "signature": bytes(range(64)),
        "issue_date": datetime(2024, 1, 1),
        "expire_years": 31,
        "signer_id": b"\xc0\xde",
        "template_id": 1,
        "chain_id": 0,
        "sn_source": SnSource.PUB_KEY_HASH,
    }
    fields.update(changes)
    return CompressedCert(**fields)  # type: ignore[arg-type]


def test_to_bytes_layout_signer_tail() -> None:
    data = _sample().to_bytes()
    assert len(data) == 72
    assert data[:64] == bytes(range(64))
    assert data[64:].hex(" ").upper() == "C0 84 1F C0 DE 10 A0 00"  # chip §6.8 signer tail


def test_round_trip_v0_and_v1() -> None:
    for cert in (
        _sample(),
        _sample(template_id=2, expire_years=28, chain_id=3),
        _sample(issue_date=datetime(2040, 6, 15, 12), expire_years=40, format_version=FORMAT_V1),
    ):
        assert CompressedCert.from_bytes(cert.to_bytes()) == cert
    v1 = _sample(issue_date=datetime(2040, 6, 15, 12), expire_years=40, format_version=FORMAT_V1)
    assert v1.to_bytes()[64:67] == bytes.fromhex("433D88")
    assert v1.to_bytes()[70:72] == b"\xa1\x50"


def test_reserved_byte_round_trips_for_v0() -> None:
    raw = bytearray(_sample().to_bytes())
    raw[71] = 0x5A
    assert CompressedCert.from_bytes(bytes(raw)).to_bytes() == bytes(raw)


def test_accessors() -> None:
    cert = _sample()
    assert cert.signer_id_hex == "C0DE"
    assert cert.r == int.from_bytes(bytes(range(32)), "big")
    assert cert.s == int.from_bytes(bytes(range(32, 64)), "big")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"signature": bytes(63)}, "64 bytes"),
        ({"signer_id": b"\x01"}, "2 bytes"),
        ({"template_id": 16}, "4 bits"),
        ({"format_version": 3}, "format version"),
        ({"issue_date": datetime(2024, 1, 1, 0, 30)}, "on the hour"),
    ],
)
def test_invalid_fields_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        _sample(**changes)


def test_from_bytes_rejects_bad_length_and_version() -> None:
    with pytest.raises(CertificateError, match="72 bytes"):
        CompressedCert.from_bytes(bytes(71))
    raw = bytearray(_sample().to_bytes())
    raw[70] = 0xA5
    with pytest.raises(CertificateError, match="format version 5"):
        CompressedCert.from_bytes(bytes(raw))
