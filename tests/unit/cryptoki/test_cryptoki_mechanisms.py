"""SHA-256, HMAC-SHA256, AES (ECB/CBC/CBC_PAD/GCM), AES key generation and ECDH through the core,
checked against hashlib/hmac and the ``cryptography`` package on standard vectors, plus the
spec's error codes for bad input (and that a refused call leaves nothing behind)."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from p11util import attr, find, find_one, ulong

from cryptoki import errors
from cryptoki.constants import CKA, CKD, CKF, CKK, CKM, CKO, CKR
from cryptoki.library import Library
from cryptoki.types import AttributeFailure, Ecdh1DeriveParams, GcmParams, Mechanism

TRUE, FALSE = b"\x01", b"\x00"

# NIST SP 800-38A F.1/F.2 (AES-128)
NIST_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
NIST_IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
NIST_PT = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
NIST_ECB_CT = bytes.fromhex(
    "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf"
    "43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4"
)
NIST_CBC_CT = bytes.fromhex(
    "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
)
# GCM spec (McGrew/Viega) test case 4: AES-128, 96-bit IV, AAD, 60-byte plaintext
GCM_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308")
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
GCM_PT = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
GCM_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_CT = bytes.fromhex(
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
)
GCM_TAG = bytes.fromhex("5bc94fbc3221a5db94fae95ae7121a47")

# RFC 4231 test cases whose key fits the chip's 32-byte HMAC key (HMAC zero-pads keys anyway)
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
]
RFC4231_TRUNCATED = (b"\x0c" * 20, b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b")

HMAC_SLOT = 6  # Trust&GO: KeyType 7, NoMac 0, clear 32-byte writes, ReqRandom


def _device(filestore):
    from atecc.slotfile import EmulatorInterface, open_device

    return open_device(EmulatorInterface(filestore / "chip0.json"))


@pytest.fixture
def hmac_filestore(tmp_path, monkeypatch, chip_factory, slot_file_writer):
    filestore = tmp_path / "filestore"
    chip_factory(filestore, "chip0.json")
    slot_file_writer(filestore, 0, "chip0.json", extra=f"object = secret,hmac,{HMAC_SLOT}\n")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    return filestore


def _write_hmac_key(filestore, key: bytes) -> None:
    from atecc.constants import Zone

    dev = _device(filestore)
    try:
        dev.write_bytes(Zone.DATA, HMAC_SLOT, 0, key.ljust(32, b"\x00"))
    finally:
        dev.close()


@pytest.fixture
def hmac_lib(hmac_filestore):
    library = Library()
    library.initialize(None)
    yield library
    library.finalize()


# -- SHA-256 ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [b"", b"abc", os.urandom(1000), os.urandom(1 << 20)],
    ids=["empty", "abc", "1000", "1MiB"],
)
def test_sha256_single_part(lib, session, data):
    lib.digest_init(session, Mechanism(CKM.SHA256))
    assert lib.digest(session, data, None) == 32  # length query keeps the operation
    assert lib.digest(session, data, 32) == hashlib.sha256(data).digest()
    with pytest.raises(errors.OperationNotInitialized):
        lib.digest(session, data, 32)


def test_sha256_fips_abc(lib, session):
    lib.digest_init(session, Mechanism(CKM.SHA256))
    assert lib.digest(session, b"abc", 32).hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_sha256_multi_part(lib, session):
    data = os.urandom(3 * 1024 * 1024 + 17)
    lib.digest_init(session, Mechanism(CKM.SHA256))
    for i in range(0, len(data), 100_003):
        lib.digest_update(session, data[i : i + 100_003])
    with pytest.raises(errors.BufferTooSmall):
        lib.digest_final(session, 31)
    assert lib.digest_final(session, 32) == hashlib.sha256(data).digest()
    lib.digest_init(session, Mechanism(CKM.SHA256))
    assert lib.digest_final(session, 32) == hashlib.sha256(b"").digest()
    # C_Digest cannot finish a multi-part digest
    lib.digest_init(session, Mechanism(CKM.SHA256))
    lib.digest_update(session, b"x")
    with pytest.raises(errors.OperationNotInitialized):
        lib.digest(session, b"y", 32)


def test_digest_errors(lib, session, device_key):
    with pytest.raises(errors.MechanismInvalid):
        lib.digest_init(session, Mechanism(0x220))  # CKM_SHA_1: not offered
    with pytest.raises(errors.MechanismParamInvalid):
        lib.digest_init(session, Mechanism(CKM.SHA256, b"\x00"))
    lib.digest_init(session, Mechanism(CKM.SHA256))
    with pytest.raises(errors.OperationActive):
        lib.digest_init(session, Mechanism(CKM.SHA256))
    with pytest.raises(errors.KeyIndigestible):
        lib.digest_key(session, device_key)


# -- HMAC ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("key,data,expect", RFC4231)
def test_hmac_rfc4231(hmac_filestore, key, data, expect):
    _write_hmac_key(hmac_filestore, key)
    lib = Library()
    lib.initialize(None)
    try:
        s = lib.open_session(0, CKF.SERIAL_SESSION)
        k = find_one(lib, s, CKO.SECRET_KEY, "hmac")
        assert attr(lib, s, k, CKA.KEY_TYPE) == ulong(CKK.GENERIC_SECRET)
        lib.sign_init(s, Mechanism(CKM.SHA256_HMAC), k)
        assert lib.sign(s, data, None) == 32
        assert lib.sign(s, data, 32).hex() == expect
        # multi-part, and verify
        lib.sign_init(s, Mechanism(CKM.SHA256_HMAC), k)
        lib.sign_update(s, data[:3])
        lib.sign_update(s, data[3:])
        assert lib.sign_final(s, 32).hex() == expect
        lib.verify_init(s, Mechanism(CKM.SHA256_HMAC), k)
        lib.verify(s, data, bytes.fromhex(expect))
        lib.verify_init(s, Mechanism(CKM.SHA256_HMAC), k)
        with pytest.raises(errors.SignatureInvalid):
            lib.verify(s, data + b"!", bytes.fromhex(expect))
        lib.verify_init(s, Mechanism(CKM.SHA256_HMAC), k)
        with pytest.raises(errors.SignatureLenRange):
            lib.verify(s, data, bytes.fromhex(expect)[:16])
    finally:
        lib.finalize()


def test_hmac_general_truncated(hmac_filestore):
    key, data, expect = RFC4231_TRUNCATED
    _write_hmac_key(hmac_filestore, key)
    lib = Library()
    lib.initialize(None)
    try:
        s = lib.open_session(0, CKF.SERIAL_SESSION)
        k = find_one(lib, s, CKO.SECRET_KEY, "hmac")
        mech = Mechanism(CKM.SHA256_HMAC_GENERAL, ulong(16))
        lib.sign_init(s, mech, k)
        assert lib.sign(s, data, 16).hex() == expect
        lib.verify_init(s, mech, k)
        lib.verify(s, data, bytes.fromhex(expect))
        for bad in (ulong(0), ulong(33), b"\x10", None):
            with pytest.raises(errors.MechanismParamInvalid):
                lib.sign_init(s, Mechanism(CKM.SHA256_HMAC_GENERAL, bad), k)
        with pytest.raises(errors.MechanismParamInvalid):
            lib.sign_init(s, Mechanism(CKM.SHA256_HMAC, ulong(16)), k)
    finally:
        lib.finalize()


def test_hmac_key_type_errors(hmac_lib):
    s = hmac_lib.open_session(0, CKF.SERIAL_SESSION)
    device = find_one(hmac_lib, s, CKO.PRIVATE_KEY, "device")
    hk = find_one(hmac_lib, s, CKO.SECRET_KEY, "hmac")
    with pytest.raises(errors.KeyTypeInconsistent):
        hmac_lib.sign_init(s, Mechanism(CKM.SHA256_HMAC), device)
    with pytest.raises(errors.KeyTypeInconsistent):
        hmac_lib.sign_init(s, Mechanism(CKM.ECDSA), hk)
    with pytest.raises(errors.KeyTypeInconsistent):
        hmac_lib.encrypt_init(s, Mechanism(CKM.AES_ECB), hk)


# -- AES ----------------------------------------------------------------------------------------
def import_aes(lib, session, key: bytes, label=b"aes", token=False) -> int:
    return lib.create_object(
        session,
        [
            (CKA.CLASS, ulong(CKO.SECRET_KEY)),
            (CKA.KEY_TYPE, ulong(CKK.AES)),
            (CKA.VALUE, key),
            (CKA.LABEL, label),
            (CKA.TOKEN, TRUE if token else FALSE),
            (CKA.ENCRYPT, TRUE),
            (CKA.DECRYPT, TRUE),
        ],
    )


def crypt(lib, s, mech, key, data, *, encrypt=True, parts=None):
    init = lib.encrypt_init if encrypt else lib.decrypt_init
    single = lib.encrypt if encrypt else lib.decrypt
    update = lib.encrypt_update if encrypt else lib.decrypt_update
    final = lib.encrypt_final if encrypt else lib.decrypt_final
    init(s, mech, key)
    if parts is None:
        n = single(s, data, None)
        return single(s, data, n)
    out = b""
    for i in range(0, len(data), parts):
        chunk = data[i : i + parts]
        n = update(s, chunk, None)
        out += update(s, chunk, n)
    n = final(s, None)
    return out + final(s, n)


def test_aes_nist_vectors(lib, rw_session):
    key = import_aes(lib, rw_session, NIST_KEY)
    assert attr(lib, rw_session, key, CKA.SENSITIVE) == TRUE
    assert lib.get_attribute_value(rw_session, key, [CKA.VALUE]) == [
        AttributeFailure(CKR.ATTRIBUTE_SENSITIVE)
    ]
    ecb, cbc = Mechanism(CKM.AES_ECB), Mechanism(CKM.AES_CBC, NIST_IV)
    for parts in (None, 16, 7, 33):
        assert crypt(lib, rw_session, ecb, key, NIST_PT, parts=parts) == NIST_ECB_CT
        assert crypt(lib, rw_session, ecb, key, NIST_ECB_CT, encrypt=False, parts=parts) == NIST_PT
        assert crypt(lib, rw_session, cbc, key, NIST_PT, parts=parts) == NIST_CBC_CT
        assert crypt(lib, rw_session, cbc, key, NIST_CBC_CT, encrypt=False, parts=parts) == NIST_PT


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 64, 100])
def test_aes_cbc_pad_matches_cryptography(lib, rw_session, length):
    from cryptography.hazmat.primitives import padding

    key = import_aes(lib, rw_session, NIST_KEY)
    data = os.urandom(length)
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(NIST_KEY), modes.CBC(NIST_IV)).encryptor()
    expect = enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
    mech = Mechanism(CKM.AES_CBC_PAD, NIST_IV)
    for parts in (None, 5, 16):
        assert crypt(lib, rw_session, mech, key, data, parts=parts) == expect
        assert crypt(lib, rw_session, mech, key, expect, encrypt=False, parts=parts) == data


def test_aes_gcm_vectors(lib, rw_session):
    key = import_aes(lib, rw_session, GCM_KEY)
    mech = Mechanism(CKM.AES_GCM, GcmParams(GCM_IV, 96, GCM_AAD, 128))
    for parts in (None, 16, 7):
        assert crypt(lib, rw_session, mech, key, GCM_PT, parts=parts) == GCM_CT + GCM_TAG
        assert (
            crypt(lib, rw_session, mech, key, GCM_CT + GCM_TAG, encrypt=False, parts=parts)
            == GCM_PT
        )
    # a non-96-bit IV, no AAD, a short tag, compared with `cryptography`
    iv = os.urandom(60)
    data = os.urandom(77)
    mech = Mechanism(CKM.AES_GCM, GcmParams(iv, 480, b"", 96))
    expect = AESGCM(GCM_KEY).encrypt(iv, data, None)[:-4]
    got = crypt(lib, rw_session, mech, key, data)
    enc = Cipher(algorithms.AES(GCM_KEY), modes.GCM(iv, min_tag_length=12)).encryptor()
    ct = enc.update(data) + enc.finalize()
    assert got == ct + enc.tag[:12]
    assert got[:-12] == expect[: len(data)]
    # tampering is refused
    lib.decrypt_init(rw_session, Mechanism(CKM.AES_GCM, GcmParams(GCM_IV, 96, GCM_AAD, 128)), key)
    with pytest.raises(errors.EncryptedDataInvalid):
        lib.decrypt(rw_session, GCM_CT + bytes([GCM_TAG[0] ^ 1]) + GCM_TAG[1:], 100)


def test_aes_bad_input(lib, rw_session, device_key):
    key = import_aes(lib, rw_session, NIST_KEY)
    with pytest.raises(errors.KeyTypeInconsistent):
        lib.encrypt_init(rw_session, Mechanism(CKM.AES_ECB), device_key)
    with pytest.raises(errors.MechanismInvalid):
        lib.encrypt_init(rw_session, Mechanism(CKM.AES_CTR, bytes(16)), key)
    for bad in (
        GcmParams(GCM_IV, 96, b"", 0),
        GcmParams(GCM_IV, 96, b"", 136),
        GcmParams(GCM_IV, 96, b"", 100),
        GcmParams(b"", 0, b"", 128),
        GcmParams(GCM_IV, 95, b"", 128),
        NIST_IV,
        None,
    ):
        with pytest.raises(errors.MechanismParamInvalid):
            lib.encrypt_init(rw_session, Mechanism(CKM.AES_GCM, bad), key)
    for bad_iv in (bytes(8), bytes(17), None):
        with pytest.raises(errors.MechanismParamInvalid):
            lib.encrypt_init(rw_session, Mechanism(CKM.AES_CBC, bad_iv), key)
    with pytest.raises(errors.MechanismParamInvalid):
        lib.encrypt_init(rw_session, Mechanism(CKM.AES_ECB, NIST_IV), key)
    # after refused inits nothing is active
    with pytest.raises(errors.OperationNotInitialized):
        lib.encrypt(rw_session, bytes(16), 16)
    lib.encrypt_init(rw_session, Mechanism(CKM.AES_ECB), key)
    with pytest.raises(errors.DataLenRange):
        lib.encrypt(rw_session, bytes(15), 16)
    with pytest.raises(errors.OperationNotInitialized):  # the error ended the operation
        lib.encrypt(rw_session, bytes(16), 16)
    lib.decrypt_init(rw_session, Mechanism(CKM.AES_CBC, NIST_IV), key)
    with pytest.raises(errors.EncryptedDataLenRange):
        lib.decrypt(rw_session, bytes(17), 32)
    lib.decrypt_init(rw_session, Mechanism(CKM.AES_CBC_PAD, NIST_IV), key)
    lib.decrypt_update(rw_session, bytes(20), 16)
    with pytest.raises(errors.EncryptedDataLenRange):
        lib.decrypt_final(rw_session, 16)
    lib.decrypt_init(rw_session, Mechanism(CKM.AES_GCM, GcmParams(GCM_IV, 96, b"", 128)), key)
    with pytest.raises(errors.EncryptedDataLenRange):
        lib.decrypt(rw_session, bytes(15), 15)
    # buffer too small keeps the operation
    lib.encrypt_init(rw_session, Mechanism(CKM.AES_ECB), key)
    with pytest.raises(errors.BufferTooSmall):
        lib.encrypt(rw_session, NIST_PT, 10)
    assert lib.encrypt(rw_session, NIST_PT, 64) == NIST_ECB_CT


def _free_blocks(lib) -> list:
    token = lib._slots[0].token
    return token.slots.free_key_blocks(token.store.load())


def test_aes_key_generation_and_destroy(lib, rw_session):
    before = _free_blocks(lib)
    assert before == [(9, 0), (9, 2)]
    gen = Mechanism(CKM.AES_KEY_GEN)
    tmpl = [(CKA.VALUE_LEN, ulong(16)), (CKA.LABEL, b"gen"), (CKA.TOKEN, TRUE)]
    k1 = lib.generate_key(rw_session, gen, tmpl)
    assert attr(lib, rw_session, k1, CKA.KEY_TYPE) == ulong(CKK.AES)
    assert attr(lib, rw_session, k1, CKA.LOCAL) == TRUE
    assert attr(lib, rw_session, k1, CKA.KEY_GEN_MECHANISM) == ulong(CKM.AES_KEY_GEN)
    k2 = lib.generate_key(rw_session, gen, tmpl)
    assert _free_blocks(lib) == []
    with pytest.raises(errors.DeviceMemory):
        lib.generate_key(rw_session, gen, tmpl)
    # the two keys are different keys
    ct = [crypt(lib, rw_session, Mechanism(CKM.AES_ECB), k, bytes(16)) for k in (k1, k2)]
    assert ct[0] != ct[1]
    # round trip through the chip
    assert crypt(lib, rw_session, Mechanism(CKM.AES_ECB), k1, ct[0], encrypt=False) == bytes(16)
    lib.destroy_object(rw_session, k1)
    assert _free_blocks(lib) == [(9, 0)]
    lib.destroy_object(rw_session, k2)
    assert _free_blocks(lib) == before


def test_aes_generate_template_errors(lib, rw_session, session):
    gen = Mechanism(CKM.AES_KEY_GEN)
    before = _free_blocks(lib)
    cases = [
        ([], errors.TemplateIncomplete),
        ([(CKA.VALUE_LEN, ulong(32))], errors.AttributeValueInvalid),
        ([(CKA.VALUE_LEN, ulong(16)), (CKA.SENSITIVE, FALSE)], errors.TemplateInconsistent),
        ([(CKA.VALUE_LEN, ulong(16)), (CKA.EXTRACTABLE, TRUE)], errors.TemplateInconsistent),
        ([(CKA.VALUE_LEN, ulong(16)), (CKA.KEY_TYPE, ulong(CKK.EC))], errors.TemplateInconsistent),
        ([(CKA.VALUE_LEN, ulong(16)), (CKA.VALUE, bytes(16))], errors.AttributeReadOnly),
        ([(CKA.VALUE_LEN, ulong(16)), (CKA.MODULUS, b"x")], errors.AttributeTypeInvalid),
        ([(CKA.VALUE_LEN, b"\x10")], errors.AttributeValueInvalid),
    ]
    for tmpl, exc in cases:
        with pytest.raises(exc):
            lib.generate_key(rw_session, gen, tmpl)
    with pytest.raises(errors.MechanismInvalid):
        lib.generate_key(
            rw_session, Mechanism(CKM.GENERIC_SECRET_KEY_GEN), [(CKA.VALUE_LEN, ulong(16))]
        )
    with pytest.raises(errors.SessionReadOnly):
        lib.generate_key(session, gen, [(CKA.VALUE_LEN, ulong(16)), (CKA.TOKEN, TRUE)])
    assert _free_blocks(lib) == before
    assert find(lib, rw_session, [(CKA.CLASS, ulong(CKO.SECRET_KEY))]) == []


def test_aes_import_errors(lib, rw_session):
    base = [(CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.KEY_TYPE, ulong(CKK.AES))]
    with pytest.raises(errors.TemplateIncomplete):
        lib.create_object(rw_session, base)
    with pytest.raises(errors.AttributeValueInvalid):
        lib.create_object(rw_session, [*base, (CKA.VALUE, bytes(32))])
    with pytest.raises(errors.TemplateInconsistent):
        lib.create_object(
            rw_session,
            [
                (CKA.CLASS, ulong(CKO.SECRET_KEY)),
                (CKA.KEY_TYPE, ulong(CKK.GENERIC_SECRET)),
                (CKA.VALUE, bytes(32)),
            ],
        )
    assert _free_blocks(lib) == [(9, 0), (9, 2)]


# -- ECDH ---------------------------------------------------------------------------------------
def _peer():
    priv = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = priv.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return priv, raw


def _device_public(lib, s, device_pub):
    point = attr(lib, s, device_pub, CKA.EC_POINT)
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[2:])


DERIVE_TMPL = [
    (CKA.CLASS, ulong(CKO.SECRET_KEY)),
    (CKA.KEY_TYPE, ulong(CKK.GENERIC_SECRET)),
    (CKA.TOKEN, FALSE),
    (CKA.SENSITIVE, FALSE),
    (CKA.EXTRACTABLE, TRUE),
    (CKA.ENCRYPT, TRUE),
    (CKA.DECRYPT, TRUE),
    (CKA.WRAP, TRUE),
    (CKA.UNWRAP, TRUE),
]


@pytest.mark.parametrize("wrapped", [False, True])
def test_ecdh_matches_cryptography(lib, session, device_key, device_pub, wrapped):
    peer, raw = _peer()
    public_data = b"\x04\x41" + raw if wrapped else raw
    mech = Mechanism(CKM.ECDH1_DERIVE, Ecdh1DeriveParams(CKD.NULL, None, public_data))
    key = lib.derive_key(session, mech, device_key, DERIVE_TMPL)
    expect = peer.exchange(ec.ECDH(), _device_public(lib, session, device_pub))
    assert attr(lib, session, key, CKA.VALUE) == expect
    assert attr(lib, session, key, CKA.VALUE_LEN) == ulong(32)
    assert attr(lib, session, key, CKA.CLASS) == ulong(CKO.SECRET_KEY)
    assert attr(lib, session, key, CKA.TOKEN) == FALSE
    # the derived key's digest (C_DigestKey) is the digest of its value
    lib.digest_init(session, Mechanism(CKM.SHA256))
    lib.digest_key(session, key)
    assert lib.digest_final(session, 32) == hashlib.sha256(expect).digest()
    lib.destroy_object(session, key)


def test_ecdh_value_hidden_unless_asked(lib, session, device_key):
    _, raw = _peer()
    mech = Mechanism(CKM.ECDH1_DERIVE, Ecdh1DeriveParams(CKD.NULL, None, raw))
    for tmpl in ([], [(CKA.EXTRACTABLE, TRUE)], [(CKA.SENSITIVE, FALSE)]):
        key = lib.derive_key(session, mech, device_key, tmpl)
        assert lib.get_attribute_value(session, key, [CKA.VALUE]) == [
            AttributeFailure(CKR.ATTRIBUTE_SENSITIVE)
        ]


def test_ecdh_errors(lib, session, rw_session, device_key, device_pub):
    _, raw = _peer()
    good = Ecdh1DeriveParams(CKD.NULL, None, raw)
    not_on_curve = raw[:-1] + bytes([raw[-1] ^ 1])
    count = len(find(lib, session, []))
    for bad in (
        Ecdh1DeriveParams(CKD.SHA256_KDF, None, raw),
        Ecdh1DeriveParams(CKD.NULL, b"shared", raw),
        Ecdh1DeriveParams(CKD.NULL, None, not_on_curve),
        Ecdh1DeriveParams(CKD.NULL, None, raw[1:]),
        Ecdh1DeriveParams(CKD.NULL, None, b"\x02" + raw[1:33]),
        raw,
        None,
    ):
        with pytest.raises(errors.MechanismParamInvalid):
            lib.derive_key(session, Mechanism(CKM.ECDH1_DERIVE, bad), device_key, [])
    with pytest.raises(errors.KeyTypeInconsistent):
        lib.derive_key(session, Mechanism(CKM.ECDH1_DERIVE, good), device_pub, [])
    with pytest.raises(errors.MechanismInvalid):
        lib.derive_key(session, Mechanism(CKM.ECDH1_COFACTOR_DERIVE, good), device_key, [])
    with pytest.raises(errors.TemplateInconsistent):
        lib.derive_key(session, Mechanism(CKM.ECDH1_DERIVE, good), device_key, [(CKA.TOKEN, TRUE)])
    with pytest.raises(errors.TemplateInconsistent):
        lib.derive_key(
            session, Mechanism(CKM.ECDH1_DERIVE, good), device_key, [(CKA.KEY_TYPE, ulong(CKK.AES))]
        )
    with pytest.raises(errors.TemplateInconsistent):
        lib.derive_key(
            session, Mechanism(CKM.ECDH1_DERIVE, good), device_key, [(CKA.VALUE_LEN, ulong(33))]
        )
    with pytest.raises(errors.AttributeReadOnly):
        lib.derive_key(session, Mechanism(CKM.ECDH1_DERIVE, good), device_key, [(CKA.VALUE, b"x")])
    assert len(find(lib, session, [])) == count  # nothing was created
    # a key pair generated without CKA_DERIVE cannot derive
    pub_t = [(CKA.EC_PARAMS, bytes.fromhex("06082a8648ce3d030107"))]
    _, priv = lib.generate_key_pair(
        rw_session, Mechanism(CKM.EC_KEY_PAIR_GEN), pub_t, [(CKA.DERIVE, FALSE)]
    )
    with pytest.raises(errors.KeyFunctionNotPermitted):
        lib.derive_key(session, Mechanism(CKM.ECDH1_DERIVE, good), priv, [])


def test_mechanism_info(lib):
    for mech in lib.get_mechanism_list(0):
        info = lib.get_mechanism_info(0, mech)
        assert info.flags & CKF.HW
    aes = lib.get_mechanism_info(0, CKM.AES_GCM)
    assert (aes.min_key_size, aes.max_key_size) == (16, 16)
    assert aes.flags & CKF.ENCRYPT and aes.flags & CKF.DECRYPT
    assert lib.get_mechanism_info(0, CKM.ECDH1_DERIVE).flags & CKF.DERIVE
    assert lib.get_mechanism_info(0, CKM.SHA256).flags & CKF.DIGEST
    assert lib.get_mechanism_info(0, CKM.AES_KEY_GEN).flags & CKF.GENERATE
    h = lib.get_mechanism_info(0, CKM.SHA256_HMAC)
    assert (h.min_key_size, h.max_key_size) == (32, 32) and h.flags & CKF.SIGN


def test_no_aes_mechanisms_without_aes_enable(
    tmp_path, monkeypatch, chip_factory, slot_file_writer
):
    """A chip whose config has AES_Enable clear offers no AES mechanism."""
    from atecc.emulator.state import StateFile

    filestore = tmp_path / "fs"
    state = chip_factory(filestore, "chip0.json")
    sf = StateFile(state)
    with sf.transaction() as txn:
        cfg = bytearray(txn.state.config)
        cfg[13] &= 0xFE
        txn.state.config = bytes(cfg) if isinstance(txn.state.config, bytes) else cfg
        txn.dirty = True
    sf.close()
    slot_file_writer(filestore, 0, "chip0.json")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    lib = Library()
    lib.initialize(None)
    try:
        mechs = set(lib.get_mechanism_list(0))
        assert CKM.SHA256 in mechs and CKM.ECDH1_DERIVE in mechs
        assert not mechs & {CKM.AES_ECB, CKM.AES_CBC, CKM.AES_CBC_PAD, CKM.AES_GCM, CKM.AES_KEY_GEN}
        with pytest.raises(errors.MechanismInvalid):
            lib.get_mechanism_info(0, CKM.AES_ECB)
    finally:
        lib.finalize()
