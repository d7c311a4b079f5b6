"""The PKCS#11 (Cryptoki) layer: core token logic in Python behind a cffi-embedded C library."""

__version__ = "0.1.0"
