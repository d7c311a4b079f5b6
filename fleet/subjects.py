"""Names and reasons in the forms operators type them.

Owns: parsing OpenSSL-style subjects (``/O=Example/CN=Device Root CA``, as ``openssl req -subj``
reads them), reading the CN (the device ID) out of a name, and the RFC 5280 revocation reasons
(``key-compromise`` and ``keyCompromise`` both mean ``keyCompromise``).

Must not: sign or store anything.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from fleet import FleetError

#: Attribute names accepted in ``/K=V/...`` subjects (OpenSSL's short and long names).
SUBJECT_ATTRIBUTES: dict[str, x509.ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "STREET": NameOID.STREET_ADDRESS,
    "TITLE": NameOID.TITLE,
    "GN": NameOID.GIVEN_NAME,
    "GIVENNAME": NameOID.GIVEN_NAME,
    "SN": NameOID.SURNAME,
    "SURNAME": NameOID.SURNAME,
}

#: CRL reason names accepted by ``revoke`` (RFC 5280 §5.3.1 spelling, as OpenSSL prints them).
REVOCATION_REASONS: dict[str, x509.ReasonFlags] = {
    flag.value.lower(): flag
    for flag in x509.ReasonFlags
    if flag is not x509.ReasonFlags.remove_from_crl
}


def parse_reason(text: str) -> str:
    """Canonical RFC 5280 spelling of a revocation reason (``key-compromise`` → keyCompromise)."""
    key = text.replace("-", "").replace("_", "").lower()
    flag = REVOCATION_REASONS.get(key)
    if flag is None:
        names = ", ".join(f.value for f in REVOCATION_REASONS.values())
        raise FleetError(f"unknown revocation reason {text!r} (one of: {names})")
    return flag.value


# --- subjects ------------------------------------------------------------------------------------


def _tokenize_subject(body: str) -> list[list[str]]:
    """Split ``a=1+b=2/c=3`` into RDNs of ``key=value`` strings, honouring backslash escapes."""
    rdns: list[list[str]] = [[]]
    current: list[str] = []
    escaped = False
    for char in body:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "+":
            rdns[-1].append("".join(current))
            current = []
        elif char == "/":
            rdns[-1].append("".join(current))
            current = []
            rdns.append([])
        else:
            current.append(char)
    if escaped:
        raise FleetError("subject ends with a lone backslash")
    rdns[-1].append("".join(current))
    return rdns


def parse_subject(text: str) -> x509.Name:
    """An X.509 name from OpenSSL's ``-subj`` syntax: ``/O=Example/CN=Device Root CA``.

    RDNs are separated by ``/`` (most significant first, as OpenSSL reads them), multi-valued
    RDNs join attributes with ``+``, and a backslash escapes ``/``, ``+`` or ``\\`` in a value.
    Attribute names are OpenSSL's (``CN``, ``O``, ``OU``, ``C``, ``ST``, ``L``, ...).
    """
    if not text.startswith("/") or text == "/":
        raise FleetError(f"subject {text!r} must look like /O=Example/CN=Name")
    rdns: list[x509.RelativeDistinguishedName] = []
    for rdn in _tokenize_subject(text[1:]):
        attributes = []
        for attr_text in rdn:
            key, sep, value = attr_text.partition("=")
            oid = SUBJECT_ATTRIBUTES.get(key.strip().upper())
            if not sep or oid is None:
                raise FleetError(f"subject component {attr_text!r}: unknown attribute {key!r}")
            if not value:
                raise FleetError(f"subject component {attr_text!r} has an empty value")
            try:
                attributes.append(x509.NameAttribute(oid, value))
            except ValueError as exc:
                raise FleetError(f"subject component {attr_text!r}: {exc}") from None
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[-1].value) if values else None
