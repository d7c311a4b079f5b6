"""cryptoki.errors: one class per CK_RV the core raises, every class raised somewhere, unique rv."""

from __future__ import annotations

import ast
from pathlib import Path

from cryptoki import errors
from cryptoki.constants import CKR

CORE = Path(errors.__file__).parent


def _classes() -> list[type[errors.Pkcs11Error]]:
    return [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.Pkcs11Error) and c is not errors.Pkcs11Error
    ]


def _raised_names() -> set[str]:
    """Names of error classes that core code constructs (``errors.X(...)`` or ``X(...)``)."""
    names: set[str] = set()
    for path in CORE.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute):
                    names.add(func.attr)
                elif isinstance(func, ast.Name):
                    names.add(func.id)
            elif isinstance(node, ast.Dict):  # driver-error -> class tables
                names.update(v.attr for v in node.values if isinstance(v, ast.Attribute))
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
    return names


def test_every_error_class_is_raised_by_the_core() -> None:
    unused = {c.__name__ for c in _classes()} - _raised_names()
    assert not unused, f"error classes nothing raises: {sorted(unused)}"


def test_each_class_has_its_own_ckr_named_after_it() -> None:
    seen: dict[int, str] = {}
    for cls in _classes():
        assert cls.rv not in seen, f"{cls.__name__} and {seen[cls.rv]} share {cls.rv:#x}"
        seen[cls.rv] = cls.__name__
        spec_name = CKR(cls.rv).name.replace("_", "").lower()
        assert cls.__name__.lower() == spec_name, (cls.__name__, CKR(cls.rv).name)


def test_generic_error_carries_any_ckr() -> None:
    err = errors.Pkcs11Error("rare", rv=CKR.KEY_SIZE_RANGE)
    assert err.rv == CKR.KEY_SIZE_RANGE
    assert str(err) == "CKR_KEY_SIZE_RANGE: rare"
    assert errors.BufferTooSmall(64).required == 64
