"""The server's log: one line per connection, which no field can split or forge.

Owns: escaping. A certificate's CN is chosen by whoever made the CSR, so it may hold a newline, a
space, ``accepted`` or a terminal escape. Field values (device ID, serial) keep only printable
ASCII other than the backslash and write every other byte of their UTF-8 as ``\\xNN``; the free
text of a reason (the last field) keeps spaces but escapes the rest the same way. The line
itself is guarded as a whole before it is written (control characters escaped), so nothing
this module is given can start a second line. Format::

    <UTC time> <peer> device=<id or -> serial=<hex or -> accepted
    <UTC time> <peer> device=<id or -> serial=<hex or -> refused: <reason>

Must not: decide verdicts (``authority.py``, ``tls.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime


def _escape(text: str, *, keep_space: bool) -> str:
    out = []
    for char in text:
        if ("!" <= char <= "~" and char != "\\") or (keep_space and char == " "):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def field(value: str | None) -> str:
    """A ``key=value`` value: ``-`` for none, else printable ASCII without spaces."""
    if value is None or value == "":
        return "-"
    return _escape(value, keep_space=False)


def text(value: str) -> str:
    """Free text (a reason, a message): printable ASCII and spaces."""
    return _escape(value, keep_space=True)


def verdict_line(peer: str, device_id: str | None, serial: str | None, reason: str | None) -> str:
    """The connection's line (without the time stamp); ``reason`` None means accepted."""
    outcome = "accepted" if reason is None else f"refused: {text(reason)}"
    return f"{field(peer)} device={field(device_id)} serial={field(serial)} {outcome}"


def stamped(message: str) -> str:
    """``message`` with its time stamp, as one line: control characters (and only those, so
    escapes made above stay readable) are escaped once more."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    guarded = "".join(
        c
        if " " <= c != "\x7f" and not 0x80 <= ord(c) < 0xA0 and c not in "\u2028\u2029"
        else f"\\x{ord(c):02x}"
        for c in message
    )
    return f"{stamp} {guarded}\n"
