"""atecc.record behaves as dataclasses does for everything the project uses: each case is
written once and checked against both decorators, so a difference is a failure here."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from atecc import record as rec

Maker = Callable[..., Any]

# (decorator with options, field function, replace, frozen error)
FLAVOURS = {
    "dataclasses": (dataclasses.dataclass, dataclasses.field, dataclasses.replace),
    "record": (rec.record, rec.field, rec.replace),
}


@pytest.fixture(params=sorted(FLAVOURS))
def kit(request: pytest.FixtureRequest) -> tuple[Any, Any, Any]:
    return FLAVOURS[request.param]


def _point(kit: tuple[Any, Any, Any], **options: Any) -> Any:
    decorate, field, _ = kit

    @decorate(**options)
    class Point:
        scale: ClassVar[int] = 10
        x: int
        y: int = 2
        tags: list[str] = field(default_factory=list)
        note: str = field(default="", repr=False, compare=False)

        def norm(self) -> int:
            return self.x + self.y

    return Point


def test_init_positional_keyword_defaults_and_factories(kit: tuple[Any, Any, Any]) -> None:
    point = _point(kit)
    p = point(1)
    assert (p.x, p.y, p.tags, p.note) == (1, 2, [], "")
    assert point(1, 3, ["a"], "n").tags == ["a"]
    assert point(1, note="n", y=5).y == 5
    assert point(1).tags is not point(1).tags  # one list per instance
    assert p.norm() == 3 and point.scale == 10
    assert "scale" not in vars(p)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((), {}),  # missing x
        ((1, 2, [], "", 5), {}),  # too many
        ((1,), {"x": 2}),  # twice
        ((1,), {"z": 2}),  # unknown
    ],
)
def test_bad_arguments_raise_type_error(
    kit: tuple[Any, Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        _point(kit)(*args, **kwargs)


def test_repr_eq_hash_follow_field_options(kit: tuple[Any, Any, Any]) -> None:
    frozen = _point(kit, frozen=True)
    a, b = frozen(1, 2, ("t",), "one"), frozen(1, 2, ("t",), "two")
    assert repr(a) == "Point(x=1, y=2, tags=('t',))".replace("Point", type(a).__qualname__)
    assert a == b and hash(a) == hash(b)  # note is compare=False
    assert a != frozen(2) and a != (1, 2, ("t",))
    assert len({a, b, frozen(3, 2, ())}) == 2


def test_mutable_with_eq_is_unhashable_and_eq_false_keeps_identity(
    kit: tuple[Any, Any, Any],
) -> None:
    mutable = _point(kit)
    with pytest.raises(TypeError):
        hash(mutable(1))
    plain = _point(kit, eq=False)
    p = plain(1)
    assert p != plain(1) and p == p and {p: 1}[p] == 1


def test_frozen_refuses_assignment_and_deletion(kit: tuple[Any, Any, Any]) -> None:
    p = _point(kit, frozen=True)(1)
    with pytest.raises(AttributeError):
        p.x = 5
    with pytest.raises(AttributeError):
        del p.y
    assert p.x == 1


def test_post_init_may_set_fields_of_a_frozen_instance(kit: tuple[Any, Any, Any]) -> None:
    decorate, _, _ = kit

    @decorate(frozen=True)
    class Sized:
        data: bytes
        size: int = -1

        def __post_init__(self) -> None:
            if self.size < 0:
                object.__setattr__(self, "size", len(self.data))

    assert Sized(b"abc").size == 3 and Sized(b"abc", 7).size == 7


def test_inheritance_puts_base_fields_first(kit: tuple[Any, Any, Any]) -> None:
    decorate, _, _ = kit

    @decorate(frozen=True)
    class Base:
        a: int
        b: int = 0

    @decorate(frozen=True)
    class Child(Base):
        c: int = 1

    assert Child(5, 6, 7) == Child(a=5, b=6, c=7)
    assert repr(Child(5)).endswith("Child(a=5, b=0, c=1)")


def test_methods_the_class_writes_are_kept(kit: tuple[Any, Any, Any]) -> None:
    decorate, _, _ = kit

    @decorate(frozen=True)
    class Custom:
        a: int

        def __repr__(self) -> str:
            return "custom"

    assert repr(Custom(1)) == "custom"


def test_slots(kit: tuple[Any, Any, Any]) -> None:
    decorate, _, _ = kit

    @decorate(slots=True)
    class Slotted:
        a: bytes = bytes(4)
        b: bool = False

        def flip(self) -> None:
            self.b = not self.b

    s = Slotted()
    s.flip()
    assert (s.a, s.b) == (bytes(4), True)
    assert not hasattr(s, "__dict__")
    with pytest.raises(AttributeError):
        s.c = 1  # type: ignore[attr-defined]


def test_replace(kit: tuple[Any, Any, Any]) -> None:
    _, _, replace = kit
    point = _point(kit, frozen=True)
    p = point(1, 2, ("t",), "n")
    q = replace(p, y=9)
    assert (q.x, q.y, q.tags, q.note) == (1, 9, ("t",), "n") and p.y == 2
    with pytest.raises(TypeError):
        replace(p, z=1)


def test_a_mutable_default_is_refused(kit: tuple[Any, Any, Any]) -> None:
    decorate, _, _ = kit
    with pytest.raises(ValueError):

        @decorate
        class Shared:
            items: list[int] = []  # noqa: RUF012 (the point of the test)


def test_default_order_is_checked(kit: tuple[Any, Any, Any]) -> None:
    decorate, _, _ = kit
    with pytest.raises(TypeError):

        @decorate
        class Bad:
            a: int = 0
            b: int


def test_the_module_path_imports_neither_dataclasses_nor_inspect() -> None:
    """The reason this module exists: loading the token core, driver, emulator and certificate
    rebuild must not create a single dataclass (each costs about 1 ms of start-up)."""
    code = (
        "import sys\n"
        "import cryptoki._abi, cryptoki.library, cryptoki.backends.atecc\n"
        "import atecc.device, atecc.emulator.bus, atecc.certs.rebuild\n"
        "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
