"""Where the built Cryptoki shared library lives.

Owns: :func:`module_path`, the one answer to "what do I give ``pkcs11-tool --module``, p11-kit or
OpenSSL?". The library is built next to this file (``cryptoki/libatecc_pkcs11.so``) by
``pip install .``/``pip install -e .`` or by ``python -m native.build_module``.

Must not: build anything or import cffi (asking for the path must stay cheap and side-effect free).
"""

from __future__ import annotations

from pathlib import Path

LIBRARY_NAME = "libatecc_pkcs11.so"


def module_path() -> str:
    """Absolute path of the built PKCS#11 module.

    :raises FileNotFoundError: the library has not been built yet (the message says how).
    """
    path = Path(__file__).resolve().parent / LIBRARY_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: the Cryptoki library is not built. Run `pip install -e .` "
            "(or `pip install .`) in the source tree, or `python -m native.build_module`."
        )
    return str(path)
