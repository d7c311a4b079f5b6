"""Slot files → token configurations, read once per C_Initialize.

Owns: finding the filestore directory, parsing every ``<N>.conf`` in it through
``atecc.slotfile`` (the cryptoauthlib-compatible parser, whose :class:`~atecc.slotfile.SlotFile`
is used as it is), the PKCS#11-layer keys of a slot file (``user_pin``), and naming the
per-token metadata file. A slot file that fails to parse is logged as ``<file>:<line>: message``
and skipped; the others still become slots.
Must not: open a device or talk to the chip (C_Initialize stays cheap and never fails because a
chip is missing).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptoki import limits

if TYPE_CHECKING:
    from atecc.slotfile import SlotFile, SlotObject

log = getLogger("cryptoki.config")

#: ``user_pin`` values: ``required`` turns on CKF_LOGIN_REQUIRED with a user PIN.
USER_PIN_VALUES = ("required", "none")

_SLOT_FILE_RE = re.compile(r"^(\d+)\.conf$")


@dataclass(frozen=True)
class TokenConfig:
    """Everything a slot file says about one token: the parsed file plus what this layer adds."""

    slot_id: int
    slot_file: SlotFile
    user_pin_required: bool = False  #: ``user_pin = required``: login with a user PIN

    @property
    def path(self) -> Path:
        return self.slot_file.path

    @property
    def interface(self) -> Any:
        return self.slot_file.interface

    @property
    def device(self) -> str:
        return self.slot_file.device

    @property
    def label(self) -> str:
        return self.slot_file.label

    @property
    def freeslots(self) -> tuple[int, ...]:
        """The ``freeslots`` line; empty when absent (the product layout's default applies)."""
        return self.slot_file.freeslots

    @property
    def objects(self) -> list[SlotObject]:
        return self.slot_file.objects

    @property
    def metadata_path(self) -> Path:
        """``<N>.pkcs11.json`` next to ``<N>.conf``: labels and IDs of generated keys."""
        return self.path.with_name(f"{self.slot_id}.pkcs11.json")


def token_config(slot_id: int, parsed: SlotFile) -> TokenConfig:
    """A TokenConfig from a parsed slot file.

    :raises ValueError: ``<file>:<line>: ...`` for a PKCS#11-layer key with a bad value.
    """
    user_pin_required = False
    pin_value = parsed.extra.get("user_pin")
    if pin_value is not None:
        text, line = pin_value
        if text.strip().lower() not in USER_PIN_VALUES:
            raise ValueError(
                f"{parsed.path}:{line}: user_pin must be one of {', '.join(USER_PIN_VALUES)}"
            )
        user_pin_required = text.strip().lower() == "required"
    return TokenConfig(slot_id=slot_id, slot_file=parsed, user_pin_required=user_pin_required)


def filestore() -> Path:
    """The directory holding slot files (see ``atecc.slotfile.filestore_dir``)."""
    from atecc.slotfile import filestore_dir

    return Path(filestore_dir())


def load(directory: Path | None = None) -> list[TokenConfig]:
    """Parse every ``<N>.conf`` in the filestore, sorted by slot ID; broken files are skipped.

    :param directory: override the filestore (tests); default :func:`filestore`.
    """
    from atecc.fileio import ownership_problem
    from atecc.slotfile import SlotFileError, parse_slot_file

    directory = directory if directory is not None else filestore()
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        log.warning("filestore %s cannot be read: %s; no slots", directory, exc.strerror)
        return []
    problem = ownership_problem(directory)
    if problem:
        # Whoever can replace a slot file chooses the device and the files the module opens.
        log.error("filestore %s refused: %s; no slots", directory, problem)
        return []
    configs: list[TokenConfig] = []
    for name in names:
        m = _SLOT_FILE_RE.match(name)
        if not m:
            continue
        path = Path(directory) / name
        slot_id = int(m.group(1))
        if slot_id > limits.MAX_SLOT_ID:
            log.error("slot file skipped: %s: slot IDs go up to %d", path, limits.MAX_SLOT_ID)
            continue
        problem = ownership_problem(path)
        if problem:
            log.error("slot file skipped: %s: %s", path, problem)
            continue
        try:
            configs.append(token_config(slot_id, parse_slot_file(path)))
        except SlotFileError as exc:
            # The parser's message already reads "<file>:<line>: what is wrong".
            log.error("slot file skipped: %s", exc)
        except (OSError, ValueError, TypeError) as exc:
            log.error("slot file skipped: %s: %s", path, exc)
    configs.sort(key=lambda c: c.slot_id)
    return configs
