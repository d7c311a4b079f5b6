"""cryptoauthlib slot files: parsing, interfaces (8-bit → 7-bit here only), filestore lookup."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from atecc.slotfile import (
    EmulatorInterface,
    I2CInterface,
    SlotFileError,
    filestore_dir,
    list_slot_files,
    open_device,
    parse_interface,
    parse_slot_file,
)


def write(tmp_path: Path, text: str, name: str = "0.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_tutorial_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """# Trust&GO part on a Raspberry Pi
interface = i2c,0x6A,1
device = ATECC608-TNGTLS   # trailing comment
label = 00ABC
freeslots = 2, 3,4
object = private,device,0
object = certificate,device,10
""",
    )
    sf = parse_slot_file(path)
    assert sf.slot_number == 0
    assert sf.interface == I2CInterface(bus=1, address7=0x35)
    assert sf.device == "ATECC608-TNGTLS"
    assert sf.label == "00ABC"
    assert sf.freeslots == (2, 3, 4)
    assert [(o.kind, o.label, o.slot, o.line) for o in sf.objects] == [
        ("private", "device", 0, 6),
        ("certificate", "device", 10, 7),
    ]
    assert sf.extra == {}


def test_defaults(tmp_path: Path) -> None:
    sf = parse_slot_file(write(tmp_path, "", "3.conf"))
    assert sf.slot_number == 3
    assert sf.label == "00ABC"
    assert sf.interface == I2CInterface(bus=2, address7=0x60)  # cryptoauthlib's defaults
    assert parse_interface("i2c", base_dir=tmp_path) == I2CInterface(bus=2, address7=0x60)
    assert parse_interface("i2c,C0", base_dir=tmp_path) == I2CInterface(bus=2, address7=0x60)


def test_i2c_fields_are_hex_like_cryptoauthlib(tmp_path: Path) -> None:
    iface = parse_interface("i2c,6c,10,100000", base_dir=tmp_path)
    assert iface == I2CInterface(bus=16, address7=0x36, baud=100000)


def test_emulator_interface_paths(tmp_path: Path) -> None:
    sf = parse_slot_file(write(tmp_path, "interface = emulator,chip0.json\n"))
    assert sf.interface == EmulatorInterface(tmp_path / "chip0.json", "fast")
    iface = parse_interface("emulator,/abs/chip.json,realistic", base_dir=tmp_path)
    assert iface == EmulatorInterface(Path("/abs/chip.json"), "realistic")


def test_an_unknown_key_is_an_error_naming_the_nearest_known_one(tmp_path: Path) -> None:
    # a typo must not give a token without what the line meant (issue 14: loud misconfiguration)
    with pytest.raises(
        SlotFileError, match=r"0.conf:2: unknown key 'freeslot'.*did you mean freeslots"
    ):
        parse_slot_file(write(tmp_path, "label = x\nfreeslot = 2,3\n"))


def test_a_misspelt_device_is_an_error_naming_the_nearest_known_one(tmp_path: Path) -> None:
    with pytest.raises(SlotFileError, match=r"unknown device 'ATECC608-TNGTSL'.*ATECC608-TNGTLS\?"):
        parse_slot_file(write(tmp_path, "device = ATECC608-TNGTSL\n"))
    assert parse_slot_file(write(tmp_path, "device = atecc608b-tngtls\n")).device == (
        "ATECC608B-TNGTLS"
    )


def test_other_trust_products_are_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse_slot_file(write(tmp_path, "device = ATECC608-TFLXTLS\n")).device == (
            "ATECC608-TFLXTLS"
        )
    assert "factory objects are not shown" in caplog.text


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("label = a\nthis is not a pair\n", 2, "key = value"),
        ("interface = spi,1\n", 1, "is cryptoauthlib's, not supported"),
        ("interface = usb,1\n", 1, "unknown interface"),
        ("interface = i2c,0x6B,1\n", 1, "8-bit"),
        ("interface = i2c,zz\n", 1, "bad i2c"),
        ("interface = emulator\n", 1, "state file"),
        ("interface = emulator,a.json,slow\n", 1, "timing"),
        ("device = ATECC508A\n", 1, "not supported by this module"),
        ("\n\nfreeslots = 1,x\n", 3, "freeslots"),
        ("freeslots = 16\n", 1, "freeslots"),
        ("object = private,device\n", 1, "object needs"),
        ("object = key,device,0\n", 1, "object kind"),
        ("object = private,device,16\n", 1, "object slot"),
        ("label = \n", 1, "empty label"),
        ("label = " + "x" * 33 + "\n", 1, "32 bytes"),
    ],
)
def test_malformed_lines(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SlotFileError) as info:
        parse_slot_file(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert fragment in str(info.value)


def test_filestore_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "cryptoauthlib.conf"
    monkeypatch.delenv("ATECC_PKCS11_FILESTORE", raising=False)
    assert filestore_dir(conf=conf) == Path("/var/lib/cryptoauthlib")
    conf.write_text("# comment\nfilestore = /srv/slots\n")
    assert filestore_dir(conf=conf) == Path("/srv/slots")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(tmp_path / "env"))
    assert filestore_dir(conf=conf) == tmp_path / "env"
    assert filestore_dir("/explicit", conf=conf) == Path("/explicit")


def test_list_slot_files_numeric_order(tmp_path: Path) -> None:
    for name in ("10.conf", "2.conf", "0.conf", "notes.conf", "1.txt"):
        (tmp_path / name).write_text("")
    assert [p.name for p in list_slot_files(tmp_path)] == ["0.conf", "2.conf", "10.conf"]


def test_open_device_on_emulator(tmp_path: Path) -> None:
    from atecc.emulator.profiles import create_chip

    create_chip(tmp_path / "chip0.json")
    sf = parse_slot_file(write(tmp_path, "interface = emulator,chip0.json\n"))
    device = open_device(sf.interface)
    try:
        assert device.transport.address7 == 0x35  # type: ignore[attr-defined]
        assert device.revision()[2] == 0x60
    finally:
        device.close()
