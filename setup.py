"""Placeholder build script; the native (cffi-embedded Cryptoki library) build is added here."""

from setuptools import setup

setup()
