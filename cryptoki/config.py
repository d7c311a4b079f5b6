"""Slot files → token configurations, read once per C_Initialize.

Owns: finding the filestore directory, parsing every ``<N>.conf`` in it through
``atecc.slotfile`` (the cryptoauthlib-compatible parser, whose :class:`~atecc.slotfile.SlotFile`
is used as it is), the PKCS#11-layer keys of a slot file (``user_pin``), and naming the
per-token metadata file. A slot file that is misconfigured (a line that fails to parse, an
unknown key, device or interface, a bad ``user_pin``) or that another user could rewrite is
logged at ERROR as ``<file>:<line>: message`` and still becomes a slot, whose token is absent
with that reason (C_GetSlotInfo's description, ``atecc doctor``); the others are unaffected. An
empty or unreadable filestore is logged at WARNING with its path.
Must not: open a device or talk to the chip (C_Initialize stays cheap and never fails because a
chip is missing).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atecc.lazylog import get_logger
from atecc.record import record
from cryptoki import limits

if TYPE_CHECKING:
    from atecc.slotfile import SlotFile, SlotObject

log = get_logger("cryptoki.config")

#: ``user_pin`` values: ``required`` turns on CKF_LOGIN_REQUIRED with a user PIN.
USER_PIN_VALUES = ("required", "none")

_SLOT_FILE_RE = re.compile(r"^(\d+)\.conf$")


@record(frozen=True)
class TokenConfig:
    """Everything a slot file says about one token: the parsed file plus what this layer adds."""

    slot_id: int
    slot_file: SlotFile
    user_pin_required: bool = False  #: ``user_pin = required``: login with a user PIN
    #: why this slot file gives no token (``0.conf:3: unknown device ...``); None when usable
    problem: str | None = None

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


def unusable(slot_id: int, path: Path, problem: str) -> TokenConfig:
    """The configuration of a slot whose file cannot give a token: the slot exists, its token is
    absent and says why. ``problem`` names the file by its name, not its full path (the slot
    description has 64 characters)."""
    from atecc.slotfile import DEFAULT_I2C_ADDRESS8, DEFAULT_I2C_BUS, I2CInterface, SlotFile

    short = problem.replace(str(path), path.name)
    if not short.startswith(path.name):
        short = f"{path.name}: {short}"
    placeholder = SlotFile(path, slot_id, I2CInterface(DEFAULT_I2C_BUS, DEFAULT_I2C_ADDRESS8 >> 1))
    return TokenConfig(slot_id=slot_id, slot_file=placeholder, problem=short)


def filestore() -> Path:
    """The directory holding slot files (see ``atecc.slotfile.filestore_dir``)."""
    from atecc.slotfile import filestore_dir

    return Path(filestore_dir())


def load(directory: Path | None = None) -> list[TokenConfig]:
    """Parse every ``<N>.conf`` in the filestore, sorted by slot ID; a misconfigured file gives a
    slot whose token is absent (:func:`unusable`).

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
            log.error("slot file refused, token absent: %s: %s", path, problem)
            configs.append(unusable(slot_id, path, f"refused: {problem}"))
            continue
        try:
            configs.append(token_config(slot_id, parse_slot_file(path)))
        except SlotFileError as exc:
            # The parser's message already reads "<file>:<line>: what is wrong".
            log.error("slot file misconfigured, token absent: %s", exc)
            configs.append(unusable(slot_id, path, str(exc)))
        except (OSError, ValueError, TypeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            log.error("slot file misconfigured, token absent: %s: %s", path, reason)
            configs.append(unusable(slot_id, path, reason))
    if not configs:
        log.warning(
            "no slot files (<N>.conf) in the filestore %s: no slots (create one with "
            "'atecc emulator init' or copy conf/i2c/0.conf; 'atecc doctor' checks the set-up)",
            directory,
        )
    configs.sort(key=lambda c: c.slot_id)
    return configs
