"""Build glue: compile the cffi-embedded Cryptoki library to ``cryptoki/libatecc_pkcs11.so``, the
I2C preload shim of ``atecc emulator run`` to ``atecc/emulator/libatecc_i2c_preload.so`` and the
broker's C relay to ``broker/_relay.*.so``.

Owns: the custom ``build_ext`` that calls ``native.build_module.build()``,
``native.build_preload.build()`` and ``native.build_relay.build()``, and the
``Distribution`` that always reports extension modules (so ``build_ext`` runs and the wheel is
tagged for this CPython X.Y and platform: the library embeds one specific libpython).
Metadata lives in ``pyproject.toml``.

* ``pip install .``: the library is built into ``build_lib/cryptoki/`` and installed with the
  package. The recorded interpreter is ``sys.executable`` of the build, which under pip's build
  isolation is still the target environment's python.
* ``pip install -e .``: the library is built in the source tree (``cryptoki/``); the last
  editable install wins.

setuptools' ``cffi_modules=`` is not used: it builds embedding modules as unlinked extension
modules that C hosts cannot load.
"""

from __future__ import annotations

import os
import sys
import sysconfig

from setuptools import Distribution, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import SetupError

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY_NAME = "libatecc_pkcs11.so"
PRELOAD_NAME = "libatecc_i2c_preload.so"


class BinaryDistribution(Distribution):
    """The package ships a platform- and Python-specific shared library."""

    def has_ext_modules(self) -> bool:
        return True


class BuildCryptokiLibrary(build_ext):
    """Build ``cryptoki/libatecc_pkcs11.so`` with cffi's embedding mode."""

    def _in_source_tree(self) -> bool:
        return bool(self.inplace or getattr(self, "editable_mode", False))

    def _base(self) -> str:
        return HERE if self._in_source_tree() else self.build_lib

    def _target(self) -> str:
        return os.path.join(self._base(), "cryptoki", LIBRARY_NAME)

    def _relay_target(self) -> str:
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        return os.path.join(self._base(), "broker", f"_relay{suffix}")

    def _preload_target(self) -> str:
        return os.path.join(self._base(), "atecc", "emulator", PRELOAD_NAME)

    def run(self) -> None:
        if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
            raise SetupError(
                f"{sys.executable} is a static build of Python (Py_ENABLE_SHARED=0). The "
                "Cryptoki library embeds libpython and needs a Python configured with "
                "--enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install X.Y)."
            )
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        from native.build_module import build

        target = self._target()
        os.makedirs(self.build_temp, exist_ok=True)
        built = build(
            target,
            tmpdir=os.path.join(self.build_temp, "cryptoki-native"),
            verbose=bool(self.verbose),
        )
        print(f"built {built} (Python {sys.executable})")
        from native.build_preload import build as build_preload

        print(f"built {build_preload(self._preload_target(), verbose=bool(self.verbose))}")
        from native.build_relay import build as build_relay

        relay = build_relay(
            os.path.dirname(self._relay_target()),
            tmpdir=os.path.join(self.build_temp, "broker-relay"),
        )
        print(f"built {relay}")

    def get_outputs(self) -> list[str]:
        return [self._target(), self._preload_target(), self._relay_target()]

    def get_output_mapping(self) -> dict[str, str]:
        # Editable wheels ask which built files map to which source-tree files; ours is built
        # in place, so there is nothing to copy.
        return {}

    def get_source_files(self) -> list[str]:
        return [
            os.path.join("native", name)
            for name in (
                "build_module.py",
                "cdefs.py",
                "build_preload.py",
                "i2c_preload.c",
                "build_relay.py",
                "broker_relay.c",
            )
        ]


setup(
    distclass=BinaryDistribution,
    cmdclass={"build_ext": BuildCryptokiLibrary},
)
