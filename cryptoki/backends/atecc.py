"""TokenBackend over ``atecc.device.Device``: the only cryptoki module that drives the chip.

Owns: opening the device lazily from a slot file's interface, decoding the slot permissions the
token needs from the config zone, and the one table that turns driver errors (``AteccError``
subclasses) into PKCS#11 errors. Must not: keep private key bytes (there are none to keep), log
data that passes through (digests are harmless, but the rule is simpler without exceptions), or
retry commands the driver already retried.

Presence: a device that cannot be opened, or that never answers the wake sequence, makes the
token *not present* (CKR_TOKEN_NOT_PRESENT); any later failure is a device error. Opening happens
on first use, never in C_Initialize.
"""

from __future__ import annotations

import contextlib
from typing import Any

from atecc import errors as ae
from atecc.lazylog import get_logger
from cryptoki import errors
from cryptoki.backend import (
    GENERIC_LAYOUT,
    CertificateSpec,
    ChipIdentity,
    ProductLayout,
    SlotCaps,
)
from cryptoki.constants import CertificateCategory

log = get_logger("cryptoki.backend")

#: Driver error → PKCS#11 error. Lookup walks the exception's MRO, so a subclass added to the
#: driver later falls back to its parent's entry; tests/unit/cryptoki/test_cryptoki_backend.py
#: still demands an explicit row for every subclass so the choice is made deliberately.
ERROR_MAP: dict[type[ae.AteccError], type[errors.Pkcs11Error]] = {
    ae.AteccError: errors.DeviceError,
    # The bus or the chip's link failed: nothing the caller did wrong, the device is unwell.
    ae.TransportError: errors.DeviceError,
    ae.NoDevice: errors.DeviceError,
    ae.BusTimeout: errors.DeviceError,
    ae.ResponseCrcError: errors.DeviceError,
    ae.ResponseFormatError: errors.DeviceError,
    ae.ChipCrcError: errors.DeviceError,
    # The chip ran the command and refused or failed it.
    ae.StatusError: errors.DeviceError,
    ae.VerifyMiscompare: errors.SignatureInvalid,
    ae.ParseError: errors.FunctionFailed,
    ae.EccFault: errors.FunctionFailed,
    ae.ExecutionError: errors.FunctionFailed,
    ae.WatchdogAboutToExpire: errors.FunctionFailed,
    # A chip in the self-test failure state, or with a failing RNG, is a broken device.
    ae.SelfTestError: errors.DeviceError,
    ae.HealthTestError: errors.DeviceError,
}


def _reason(exc: BaseException) -> str:
    """An exception as words for a log line or a slot description (no class names)."""
    return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)


def map_error(exc: ae.AteccError) -> errors.Pkcs11Error:
    """The Pkcs11Error instance for a driver exception (nearest mapped ancestor wins)."""
    for cls in type(exc).__mro__:
        target = ERROR_MAP.get(cls)
        if target is not None:
            return target(f"chip: {exc}")
    return errors.DeviceError(f"chip: {exc}")


class chip_errors:  # noqa: N801 (used like the function it replaced: ``with chip_errors(...)``)
    """Run a chip transaction and re-raise driver errors as Pkcs11Error.

    :param what: short description for the log line ("sign with slot 0").
    :param overrides: context-specific codes by driver class, e.g.
        ``{ae.ExecutionError: errors.KeyFunctionNotPermitted}`` where the context makes the
        refusal precise; looked up along the exception's MRO before :data:`ERROR_MAP`.

    A class rather than a ``@contextlib.contextmanager`` generator: every chip operation enters
    one, and the generator machinery costs more than these two plain methods.
    """

    __slots__ = ("overrides", "what")

    def __init__(
        self,
        what: str,
        overrides: dict[type[ae.AteccError], type[errors.Pkcs11Error]] | None = None,
    ) -> None:
        self.what = what
        self.overrides = overrides

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if isinstance(exc, OSError):
            # Below the driver (the bus device, an emulator state file): device trouble too.
            log.warning("%s failed: %s -> DeviceError", self.what, exc)
            raise errors.DeviceError(f"chip I/O: {exc}") from exc
        if exc is None or not isinstance(exc, ae.AteccError):
            return  # success, or not a driver error: propagate unchanged
        mapped: errors.Pkcs11Error | None = None
        if self.overrides:
            for cls in type(exc).__mro__:
                target = self.overrides.get(cls)
                if target is not None:
                    mapped = target(f"chip: {exc}")
                    break
        if mapped is None:
            mapped = map_error(exc)
        log.warning("%s failed: %s -> %s", self.what, exc, type(mapped).__name__)
        raise mapped from exc


#: Overrides for commands whose execution error means the slot's config refuses the key use.
_REFUSED: dict[type[ae.AteccError], type[errors.Pkcs11Error]] = {
    ae.ExecutionError: errors.KeyFunctionNotPermitted
}
#: Overrides for commands whose execution error means the slot cannot be written (locked).
_NO_ROOM: dict[type[ae.AteccError], type[errors.Pkcs11Error]] = {
    ae.ExecutionError: errors.DeviceMemory
}


def decode_slot_caps(config: bytes, slot: int) -> SlotCaps:
    """What the token may do with ``slot``, from the 128-byte config zone (decoded by the
    driver's :class:`atecc.config_zone.ConfigZone`, chip §3.4-§3.5).

    For P-256 private keys, ReadKey says whether external digests may be signed and ECDH run,
    WriteConfig whether GenKey may write a new key; an AES slot whose WriteConfig is "always"
    (clear 32-byte writes after the data lock) can take new AES keys; a SHA/data slot without
    NoMac can key HMAC. A locked slot (SlotLocked bit clear) takes nothing new.
    """
    from atecc.config_zone import ConfigZone
    from atecc.constants import KeyType, slot_size

    zone = ConfigZone(config)
    sc, kc = zone.slot_config(slot), zone.key_config(slot)
    private = kc.private and kc.key_type == KeyType.P256
    unlocked = not zone.slot_locked(slot)
    return SlotCaps(
        slot=slot,
        p256_private=private,
        gen_key=private and slot < 8 and sc.genkey_allowed and unlocked,
        ecdh=private and sc.ecdh,
        external_sign=private and sc.external_sign,
        aes=kc.key_type == KeyType.AES,
        aes_writable=not kc.private
        and kc.key_type == KeyType.AES
        and sc.write_config == 0
        and unlocked,
        hmac=not kc.private and kc.key_type == KeyType.SHA_OR_DATA and not sc.no_mac,
        req_random=kc.req_random,
        size=slot_size(slot),
    )


#: Trust&GO for TLS (ATECC608-TNGTLS), from Microchip's TNGTLS datasheet: slot 0 holds the
#: factory device key, slots 2-4 are GenKey-able P-256 private slots and slot 9 an
#: always-writable AES slot; the others hold the factory's keys and certificates.
TRUST_AND_GO = ProductLayout(
    name="Trust&GO",
    device_key_slot=0,
    reserved_slots=frozenset({0, 1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}),
    default_freeslots=(2, 3, 4, 9),
    certificates=(
        CertificateSpec("device", CertificateCategory.TOKEN_USER, trusted=False, key_slot=0),
        CertificateSpec("signer", CertificateCategory.AUTHORITY, trusted=True),
    ),
)


def product_layout(device: str) -> ProductLayout:
    """The layout of a slot file's ``device`` (Trust&GO parts end in ``TNGTLS``)."""
    return TRUST_AND_GO if device.upper().endswith("TNGTLS") else GENERIC_LAYOUT


class AteccBackend:
    """One chip reached through a slot file's ``interface`` line.

    :param interface: the parsed interface object from ``atecc.slotfile`` (I2C or emulator).
    :param name: slot file name, for log lines.
    :param device: the slot file's ``device`` (chooses the product layout).
    :param root_ca: the slot file's ``root_ca``: the PEM certificate of the CA that signed the
        chip's signer certificate, when it is not Microchip's (an emulated chip's own root).
    """

    def __init__(
        self, interface: Any, name: str, device: str = "ATECC608", root_ca: Any = None
    ) -> None:
        self._interface = interface
        self._name = name
        self._layout = product_layout(device)
        self._root_ca = root_ca
        self._device: Any = None
        #: the last reason the chip was absent, so it is logged at WARNING once, not per probe
        self._absent: str | None = None
        self._config: bytes | None = None
        self._caps: dict[int, SlotCaps] = {}  #: decoded from ``_config``, dropped with it

    # -- opening ---------------------------------------------------------------------------
    def _open(self) -> Any:
        if self._device is None:
            from atecc.slotfile import open_device  # lazy: keeps C_Initialize cheap

            try:
                self._device = open_device(self._interface)
            except Exception as exc:  # no bus, no state file, bad permissions: all "absent"
                raise self._not_present(f"cannot open {self._where()}: {_reason(exc)}") from exc
        return self._device

    def _where(self) -> str:
        from atecc.slotfile import I2CInterface

        iface = self._interface
        if isinstance(iface, I2CInterface):
            return f"/dev/i2c-{iface.bus} (address 0x{iface.address7:02X})"
        return f"emulator state {getattr(iface, 'state_path', iface)}"

    def _not_present(self, reason: str) -> errors.TokenNotPresent:
        """TokenNotPresent with ``reason``, logged at WARNING the first time (and when it
        changes), at DEBUG on every later probe."""
        message = f"{self._name}: {reason}"
        if message != self._absent:
            log.warning("%s; the token is absent ('atecc doctor' checks the set-up)", message)
            self._absent = message
        else:
            log.debug("%s", message)
        return errors.TokenNotPresent(message)

    def identity(self) -> ChipIdentity:
        dev = self._open()
        try:
            serial = bytes(dev.serial_number())
            revision = bytes(dev.revision())
        except (ae.NoDevice, ae.TransportError, OSError) as exc:
            # Nothing answers the wake (or the bus device or emulator state file went away):
            # the token is absent rather than broken. Drop the device so that the next probe
            # starts from scratch.
            self.close()
            raise self._not_present(f"no chip answers at {self._where()}: {_reason(exc)}") from exc
        except ae.AteccError as exc:
            raise map_error(exc) from exc
        self._absent = None
        return ChipIdentity(serial=serial, revision=revision)

    def _config_zone(self) -> bytes:
        if self._config is None:
            dev = self._open()
            with chip_errors("read config zone"):
                raw = dev.read_config_zone()
            self._config = bytes(getattr(raw, "raw", raw))
        return self._config

    # -- TokenBackend ----------------------------------------------------------------------
    def slot_caps(self, slot: int) -> SlotCaps:
        caps = self._caps.get(slot)
        if caps is None:
            caps = self._caps[slot] = decode_slot_caps(self._config_zone(), slot)
        return caps

    def aes_enabled(self) -> bool:
        from atecc.config_zone import ConfigZone

        return ConfigZone(self._config_zone()).aes_enabled

    def random(self, length: int) -> bytes:
        dev = self._open()
        out = bytearray()
        with chip_errors("random"):
            while len(out) < length:
                out += dev.random()
        return bytes(out[:length])

    def public_key(self, slot: int) -> bytes:
        dev = self._open()
        with chip_errors(f"public key of slot {slot}"):
            return bytes(dev.get_public_key(slot))

    def stored_public_key(self, slot: int) -> bytes:
        dev = self._open()
        with chip_errors(f"read public key slot {slot}"):
            return bytes(dev.read_public_key(slot))

    def generate_key(self, slot: int) -> bytes:
        dev = self._open()
        # The config says GenKey is allowed before we get here; an execution error now means
        # the chip disagrees (slot locked since), which the caller sees as no room left.
        with chip_errors(f"GenKey slot {slot}", _NO_ROOM):
            return bytes(dev.gen_key(slot))

    def sign_digest(self, slot: int, digest: bytes) -> bytes:
        dev = self._open()
        with chip_errors(f"sign with slot {slot}", _REFUSED):
            return bytes(dev.sign_digest(slot, digest))

    def ecdh(self, slot: int, peer: bytes) -> bytes:
        dev = self._open()
        with chip_errors(f"ECDH with slot {slot}", _REFUSED):
            return bytes(dev.ecdh(slot, peer))

    def sha256(self, data: bytes) -> bytes:
        dev = self._open()
        with chip_errors("SHA-256"):
            return bytes(dev.sha256(data))

    def hmac_sha256(self, slot: int, data: bytes, *, random_nonce: bool) -> bytes:
        dev = self._open()
        with chip_errors(f"HMAC with slot {slot}", _REFUSED):
            return bytes(dev.hmac_sha256(slot, data, random_nonce=random_nonce))

    def aes_ecb(self, slot: int, key_block: int, data: bytes, *, decrypt: bool) -> bytes:
        dev = self._open()
        with chip_errors(f"AES with slot {slot}", _REFUSED):
            return bytes(dev.aes_ecb_blocks(slot, data, decrypt=decrypt, key_block=key_block))

    def aes_cbc_encrypt(self, slot: int, key_block: int, iv: bytes, data: bytes) -> bytes:
        dev = self._open()
        with chip_errors(f"AES with slot {slot}", _REFUSED):
            return bytes(dev.aes_cbc_encrypt(slot, iv, data, key_block=key_block))

    def ghash(self, h: bytes, y: bytes, data: bytes) -> bytes:
        dev = self._open()
        with chip_errors("AES GFM"):
            return bytes(dev.aes_ghash(h, y, data))

    def write_secret_block(self, slot: int, offset: int, block: bytes) -> None:
        from atecc.constants import Zone

        dev = self._open()
        with chip_errors(f"write slot {slot}", _NO_ROOM):
            dev.write_bytes(Zone.DATA, slot, offset, block)

    def read_slot(self, slot: int) -> bytes:
        from atecc.constants import Zone, slot_size

        dev = self._open()
        with chip_errors(f"read slot {slot}"):
            return bytes(dev.read_bytes(Zone.DATA, slot, 0, slot_size(slot)))

    def _root_public_key(self) -> bytes | None:
        """X||Y of the slot file's ``root_ca``, if it names one.

        The signer certificate's authority key identifier is rebuilt from the root's key; real
        Trust&GO parts use Microchip's root (the template default), an emulated chip its own.
        """
        if self._root_ca is None:
            return None
        from atecc.certs.rebuild import load_root_public_key  # no cryptography import

        return load_root_public_key(self._root_ca)

    def layout(self) -> ProductLayout:
        return self._layout

    def certificate_chain(self, device_public_key: bytes | None = None) -> tuple[bytes, ...]:
        from atecc.certs.rebuild import read_chain

        dev = self._open()
        root_key = self._root_public_key()
        with chip_errors("rebuild certificate chain"):
            device_der, signer_der = read_chain(
                dev, root_public_key=root_key, device_public_key=device_public_key
            )
        return bytes(device_der), bytes(signer_der)

    def close(self) -> None:
        dev, self._device = self._device, None
        self._config = None
        self._caps = {}
        if dev is not None:
            with contextlib.suppress(Exception):  # at process exit the bus may already be gone
                dev.close()
