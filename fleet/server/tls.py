"""The server's TLS context: every client check happens inside the handshake.

Owns: the pyOpenSSL context (TLS 1.2 minimum, a client certificate required and verified against
the CA, the CRL -- when the server has one -- checked by OpenSSL itself with ``CRL_CHECK``), and
the verify callback that, for the client's own certificate, asks the registry
(:meth:`Authority.check`) and fails the handshake when the device is unregistered or revoked.
Whatever refuses a client, the reason is recorded on the connection (:class:`Handshake`) for its
log line.

Why pyOpenSSL and not Python's ``ssl``: ``ssl`` verifies the chain inside OpenSSL and only hands
the certificate over after the handshake has completed; it has no verify callback, so a registry
check could only refuse with an HTTP 403 on an already established connection. pyOpenSSL
(maintained by the PyCA, the ``cryptography`` authors) exposes ``SSL_CTX_set_verify``'s callback,
which runs during the handshake and whose ``False`` aborts it with an alert.

Must not: read or write sockets (``loop.py``), or decide what the registry says
(``authority.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from OpenSSL import SSL, crypto

from fleet import FleetError
from fleet.server.authority import Authority, identity

#: X509_V_ERR_* codes (OpenSSL x509_vfy.h) and the reasons the log gives for them.
_UNKNOWN_AUTHORITY = {2, 7, 18, 19, 20, 21, 24, 25, 27, 28, 32}
_VERIFY_REASONS = {
    9: "not yet valid",
    10: "expired",
    12: "CRL expired (publish a new CRL)",
    23: "revoked (listed in the CRL)",
    26: "bad certificate (not a client certificate)",
    3: "CRL missing (unable to get certificate CRL)",
}


def verify_reason(code: int) -> str:
    if code in _UNKNOWN_AUTHORITY:
        return f"unknown authority (verify error {code})"
    return _VERIFY_REASONS.get(code, f"bad certificate (verify error {code})")


@dataclass
class Handshake:
    """What the verify callback learned about one connection."""

    device_id: str | None = None
    serial: str | None = None
    refusal: str | None = None
    verified: bool = False


def _on_verify(
    authority: Authority,
) -> Any:
    def callback(conn: SSL.Connection, cert: crypto.X509, code: int, depth: int, ok: int) -> bool:
        state = conn.get_app_data()
        if not isinstance(state, Handshake):  # never: every connection gets one
            return False
        try:
            if depth == 0:
                leaf = cert.to_cryptography()
                state.device_id, state.serial = identity(leaf)
            if not ok:
                if state.refusal is None:
                    state.refusal = verify_reason(code)
                return False
            if depth != 0:
                return True
            verdict = authority.check(leaf)
            if not verdict.accepted:
                state.refusal = verdict.reason
                return False
            state.verified = True
            return True
        except Exception as exc:  # fail closed, with the reason for the log
            state.refusal = f"internal error ({type(exc).__name__}: {exc})"
            return False

    return callback


def _crl_store(context: SSL.Context, crl: x509.CertificateRevocationList | None) -> None:
    if crl is None:
        return
    store = context.get_cert_store()
    if store is None:
        raise FleetError("the TLS library gave no certificate store")
    store.add_crl(crl)
    store.set_flags(crypto.X509StoreFlags.CRL_CHECK)


def build_context(
    cert: Path,
    key: Path,
    ca_file: Path,
    authority: Authority,
    crl: x509.CertificateRevocationList | None,
) -> SSL.Context:
    """A server context whose handshake refuses every client the CA, CRL or registry refuses."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_TICKET)
    try:
        context.use_certificate_chain_file(str(cert))
        context.use_privatekey_file(str(key))
        context.check_privatekey()
        context.load_verify_locations(str(ca_file))
    except (SSL.Error, OSError) as exc:
        raise FleetError(f"cannot load the server certificate, key or CA: {exc}") from None
    context.set_verify(
        SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT | SSL.VERIFY_CLIENT_ONCE,
        _on_verify(authority),
    )
    context.set_verify_depth(4)
    # Sessions are not resumed: every connection is verified (and asks the registry) afresh.
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    _crl_store(context, crl)
    return context


def handshake_error_reason(exc: SSL.Error, state: Handshake) -> str:
    """The log reason for a failed handshake: the verify callback's, else OpenSSL's."""
    if state.refusal is not None:
        return state.refusal
    text = " ".join(str(exc).split()).lower()
    if "peer did not return a certificate" in text or "certificate required" in text:
        return "no certificate"
    detail = ""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], list) and args[0]:
        detail = str(args[0][-1][-1])
    return f"handshake error ({detail or text or type(exc).__name__})"
