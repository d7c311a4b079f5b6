"""Slot: one slot file, i.e. one chip bus position, and the token that may sit in it.

Owns: CK_SLOT_INFO (description, flags with CKF_TOKEN_PRESENT decided by a lazy probe).
Must not: cache "absent" forever: a slot whose chip did not answer is asked again next time.
"""

from __future__ import annotations

from cryptoki.config import TokenConfig
from cryptoki.constants import CKF
from cryptoki.token import MANUFACTURER, Token, revision_version
from cryptoki.types import SlotInfo, Version


class Slot:
    """A slot ID (the N of ``N.conf``) with its token."""

    def __init__(self, config: TokenConfig, token: Token) -> None:
        self.slot_id = config.slot_id
        self.config = config
        self.token = token

    def info(self) -> SlotInfo:
        present = self.token.probe()
        flags = CKF.HW_SLOT | (CKF.TOKEN_PRESENT if present else 0)
        hw = revision_version(self.token.identity.revision) if present else Version(0, 0)
        description = f"ATECC608 {self.config.device} ({self.config.path.name})"
        if not present and self.token.absent_reason:
            description = f"{self.config.path.name}: {self.token.absent_reason}"
        return SlotInfo(
            slot_description=description,
            manufacturer_id=MANUFACTURER,
            flags=int(flags),
            hardware_version=hw,
            firmware_version=Version(0, 0),
        )
