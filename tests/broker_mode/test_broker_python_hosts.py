"""python-pkcs11 on a Python the module cannot run in (3.12, from scripts/setup.sh's
``.venv-hosts``) uses the chip through the broker: its process loads only p11-kit's C client."""

from __future__ import annotations

import hashlib
import sys

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from .conftest import REPO, run

pytestmark = pytest.mark.native
MINE = f"{sys.version_info.major}.{sys.version_info.minor}"

SIGN = r"""
import sys
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label="00ABC")
with token.open() as session:
    key = session.get_key(ObjectClass.PRIVATE_KEY, KeyType.EC, label="device")
    pub = session.get_key(ObjectClass.PUBLIC_KEY, KeyType.EC, label="device")
    digest = bytes.fromhex(sys.argv[2])
    print("python", sys.version.split()[0])
    print("point", pub[Attribute.EC_POINT].hex())
    print("sig", key.sign(digest, mechanism=Mechanism.ECDSA).hex())
"""


def other_version_python():
    for candidate in sorted((REPO / ".venv-hosts").glob("py3.*")):
        if not candidate.name.endswith("-bare") and candidate.name != f"py{MINE}":
            return candidate / "bin" / "python"
    pytest.skip("no .venv-hosts/py3.X of another version: scripts/setup.sh makes one")


def test_python_pkcs11_on_another_python_version_signs_through_the_broker(broker, client_module):
    python = other_version_python()
    digest = hashlib.sha256(b"python-pkcs11 through the broker").digest()
    out = run([python, "-c", SIGN, client_module, digest.hex()], env=broker.client_env)
    fields = dict(line.split(maxsplit=1) for line in out.stdout.splitlines())
    assert not fields["python"].startswith(MINE + "."), fields["python"]
    point = bytes.fromhex(fields["point"])
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[2:])
    raw = bytes.fromhex(fields["sig"])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    assert "Traceback" not in out.stderr
