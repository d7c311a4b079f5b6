"""DER (X.690) by hand: the one toolkit for every certificate, CSR and key encoding we use.

Owns: writing definite-length TLVs and the few universal types the project needs (SEQUENCE, SET,
OID, INTEGER, strings, BIT/OCTET STRING, the ECDSA signature value), and reading TLVs back
(:func:`read_tlv`, :func:`children`, :func:`element_length`). Names say the direction:
``encode_length`` writes a length field, ``element_length`` measures an element already written.
Kept free of ``cryptography`` on purpose (listing objects runs on every cold start of every
client process); shared by the chip's certificate templates (``atecc.certs``), the token core
(``cryptoki.der``) and the fleet code, so none of them writes its own.
Must not: know about X.509 semantics beyond encoding, or accept indefinite lengths.
"""

from __future__ import annotations

# --- writing ---------------------------------------------------------------------------------


def encode_length(n: int) -> bytes:
    """Definite-length encoding, short form below 128."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(value)) + value


def tlv_long(tag: int, value: bytes) -> bytes:
    """TLV with the length always in the 2-byte long form (``82 HH LL``).

    The templates use this form for the certificate and TBS SEQUENCEs so that their lengths can
    change without moving any field (chip §6.6).
    """
    if len(value) > 0xFFFF:
        raise ValueError("value too long for a 2-byte length")
    return bytes((tag, 0x82)) + len(value).to_bytes(2, "big") + value


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    return tlv(0x31, b"".join(items))


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def integer(value: int) -> bytes:
    """A non-negative INTEGER in minimal form (leading 0x00 when the top bit is set)."""
    body = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    if body[0] & 0x80:
        body = b"\x00" + body
    return tlv(0x02, body)


def utf8(text: str) -> bytes:
    return tlv(0x0C, text.encode("utf-8"))


def printable(text: str) -> bytes:
    return tlv(0x13, text.encode("ascii"))


def boolean_true() -> bytes:
    return b"\x01\x01\xff"


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def bit_string(value: bytes, unused_bits: int = 0) -> bytes:
    return tlv(0x03, bytes((unused_bits,)) + value)


def ecdsa_sig_value(r: int, s: int) -> bytes:
    """DER ``Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }``."""
    return seq(integer(r), integer(s))


def signature_bit_string(r: int, s: int) -> bytes:
    """The certificate's signatureValue: the DER ECDSA signature inside a BIT STRING."""
    return bit_string(ecdsa_sig_value(r, s))


# --- reading ---------------------------------------------------------------------------------


def read_tlv(data: bytes, pos: int = 0) -> tuple[int, int, int, int]:
    """Read one TLV at ``pos``: (tag, start of value, end of value, end of the whole TLV).

    Definite lengths only (DER); raises ValueError on truncation or indefinite forms.
    """
    if pos + 2 > len(data):
        raise ValueError("DER truncated")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not used in certificates we read")
    length = data[pos + 1]
    head = pos + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or head + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[head : head + count], "big")
        head += count
    end = head + length
    if end > len(data):
        raise ValueError("DER value runs past the end")
    return tag, head, end, end


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """The (tag, tlv_start, tlv_end) of each element inside a constructed value."""
    out = []
    pos = start
    while pos < end:
        tag, _, _, nxt = read_tlv(data, pos)
        out.append((tag, pos, nxt))
        pos = nxt
    return out


def element_length(data: bytes) -> int:
    """Length of the single DER element at the start of ``data`` (to trim slot padding)."""
    return read_tlv(data, 0)[3]
