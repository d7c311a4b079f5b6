"""p11-kit-aware programs find the module once its module file is installed (no --provider)."""

from __future__ import annotations

import os
import uuid

import pytest

from .conftest import REPO, require, run

pytestmark = pytest.mark.native


def test_p11tool_finds_the_token_through_p11_kit(module_path, token_env, tmp_path):
    env = dict(token_env)
    if os.getuid() != 0:
        env["HOME"] = str(tmp_path)  # the per-user directory, inside the test's own HOME
        env.pop("XDG_CONFIG_HOME", None)
    # As root the file has to go to /etc/pkcs11/modules (p11-kit ignores per-user config for
    # root): a unique name, removed again whatever happens.
    name = f"atecc608-test-{uuid.uuid4().hex[:8]}"
    script = REPO / "scripts" / "install-p11-kit-module.sh"
    out = run(["bash", str(script), "--name", name, module_path], env=env).stdout
    try:
        listing = run([require("p11tool"), "--list-tokens"], env=env).stdout
        assert "Label: 00ABC" in listing, listing
        assert "Manufacturer: Microchip Technology Inc" in listing, listing
        assert f"Module: {module_path}" in listing or "libatecc_pkcs11.so" in listing, listing
        # libp11's engine defaults to p11-kit's proxy: the tutorial's command needs no
        # OPENSSL_CONF at all once the module is registered (README, "p11-kit").
        plain = {k: v for k, v in env.items() if k != "OPENSSL_CONF"}
        csr = tmp_path / "p11kit.csr"
        run(
            [
                require("openssl"),
                "req",
                "-engine",
                "pkcs11",
                "-keyform",
                "engine",
                "-key",
                "pkcs11:token=00ABC;object=device;type=private",
                "-new",
                "-subj",
                "/CN=through p11-kit",
                "-out",
                str(csr),
            ],
            env=plain,
            input="",
        )
        run([require("openssl"), "req", "-in", str(csr), "-noout", "-verify"], env=plain)
    finally:
        run(["bash", str(script), "--remove", "--name", name], env=env)
    assert name in out
