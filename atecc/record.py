"""``@record``: value classes from annotations, like ``@dataclasses.dataclass``, built without
generating source code, for the modules every process that loads the PKCS#11 module imports.

Why not dataclasses: ``@dataclass`` writes each method as Python source and compiles it, about
0.9 ms per frozen class on the reference machine, and importing ``dataclasses`` pulls in
``inspect`` (with ``dis``, ``tokenize``...). Measured in the first signature of a new process
(``bench/run.py``'s "process start to first signature", emulator in-process): 36 dataclasses took
33 ms to create and the import 10–20 ms more, of about 170 ms. ``attrs`` generates source the same
way. Here each method is one closure shared by every class, specialised only by the field list.

Owns: the subset of dataclass behaviour the token core, the driver and the emulator use:
annotated fields in order (those of ``@record`` bases first), defaults, :func:`field` with
``default``/``default_factory``/``repr``/``compare``, ``__post_init__``, ``frozen`` (assignment
raises :class:`FrozenInstanceError`, an ``AttributeError``), ``eq`` (with the hash rule of
dataclasses: frozen + eq hash by value, eq without frozen are unhashable), ``slots``, and
:func:`replace`. A method the class writes itself is kept. ``ClassVar`` annotations are not
fields.

Must not: grow features nobody here uses (ordering, ``kw_only``, ``InitVar``, ``asdict``);
command-line code and the fleet package, where start-up does not matter, keep ``dataclasses``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = ["FrozenInstanceError", "field", "record", "replace"]

T = TypeVar("T")

_MISSING: Any = object()
_FIELDS = "__record_fields__"


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class Field:
    """What :func:`field` returns; replaced by the default (or removed) when the class is made."""

    __slots__ = ("compare", "default", "default_factory", "name", "repr")

    def __init__(
        self, default: Any, default_factory: Callable[[], Any] | None, repr: bool, compare: bool
    ) -> None:
        if default is not _MISSING and default_factory is not None:
            raise ValueError("field(): give default or default_factory, not both")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """A field with a default factory, or left out of ``repr``/``==``."""
    return Field(default, default_factory, repr, compare)


def _is_class_var(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(text, str) and text.split("[", 1)[0].rsplit(".", 1)[-1] == "ClassVar"


def _collect(cls: type) -> tuple[Field, ...]:
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in getattr(base, _FIELDS, ()):
            found[f.name] = f
    # Own annotations only (bases were done above); inspect.get_annotations would import inspect.
    own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    for name, annotation in own.items():
        if _is_class_var(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        if type(value).__hash__ is None:  # mutable (list, dict, bytearray...): shared by all
            raise ValueError(f"{cls.__name__}.{name}: mutable default, use field(default_factory)")
        f = value if isinstance(value, Field) else Field(value, None, True, True)
        f.name = name
        found.pop(name, None)  # a redefinition moves to the end, as in dataclasses
        found[name] = f
        if isinstance(value, Field):
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
    fields = tuple(found.values())
    seen_default = False
    for f in fields:
        has_default = f.default is not _MISSING or f.default_factory is not None
        if seen_default and not has_default:
            raise TypeError(f"{cls.__name__}: field {f.name} without a default follows one with")
        seen_default = seen_default or has_default
    return fields


def _make_init(cls: type, fields: tuple[Field, ...], slots: bool) -> Callable[..., None]:
    names = tuple(f.name for f in fields)
    count = len(names)
    index = {name: i for i, name in enumerate(names)}
    # Per position: the default, or _MISSING (required, or made by a factory: see `factories`).
    defaults = [f.default for f in fields]
    factories = {i: f.default_factory for i, f in enumerate(fields) if f.default_factory}
    post_init = getattr(cls, "__post_init__", None) is not None
    qualname = cls.__qualname__
    set_attr = object.__setattr__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        given = len(args)
        if given == count and not kwargs:
            values: Any = args
        else:
            if given > count:
                raise TypeError(f"{qualname}() takes {count} arguments, {given} were given")
            values = defaults.copy()
            values[:given] = args
            for name, value in kwargs.items():
                position = index.get(name)
                if position is None:
                    raise TypeError(f"{qualname}() got an unexpected keyword argument {name!r}")
                if position < given:
                    raise TypeError(f"{qualname}() got multiple values for argument {name!r}")
                values[position] = value
            if _MISSING in values:
                for position in range(given, count):
                    if values[position] is _MISSING:
                        factory = factories.get(position)
                        if factory is None:
                            raise TypeError(
                                f"{qualname}() missing required argument {names[position]!r}"
                            )
                        values[position] = factory()
        if slots:
            for name, value in zip(names, values, strict=True):
                set_attr(self, name, value)
        else:
            self.__dict__.update(zip(names, values, strict=True))
        if post_init:
            self.__post_init__()

    init.__qualname__ = f"{qualname}.__init__"
    return init


def _make_repr(fields: tuple[Field, ...]) -> Callable[[Any], str]:
    shown = tuple(f.name for f in fields if f.repr)

    def show(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__qualname__}({inner})"

    return show


def _make_eq(fields: tuple[Field, ...]) -> tuple[Callable[..., Any], Callable[[Any], int]]:
    compared = tuple(f.name for f in fields if f.compare)

    def key(self: Any) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in compared])

    def equal(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) == key(other)

    def hashed(self: Any) -> int:
        return hash(key(self))

    return equal, hashed


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def _build(cls: type, frozen: bool, eq: bool, slots: bool) -> type:
    fields = _collect(cls)
    if slots:
        body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        for f in fields:
            body.pop(f.name, None)  # defaults live in the field list, not as class attributes
        body["__slots__"] = tuple(f.name for f in fields)
        body["__qualname__"] = cls.__qualname__
        cls = type(cls)(cls.__name__, cls.__bases__, body)
    own = cls.__dict__
    setattr(cls, _FIELDS, fields)
    if "__init__" not in own:
        cls.__init__ = _make_init(cls, fields, slots)  # type: ignore[misc]
    if "__repr__" not in own:
        cls.__repr__ = _make_repr(fields)  # type: ignore[assignment, method-assign]
    if eq:
        eq_fn, hash_fn = _make_eq(fields)
        if "__eq__" not in own:
            cls.__eq__ = eq_fn  # type: ignore[method-assign]
        if "__hash__" not in own or own["__hash__"] is None:
            cls.__hash__ = hash_fn if frozen else None  # type: ignore[assignment, method-assign]
    if frozen:
        cls.__setattr__ = _frozen_setattr  # type: ignore[assignment, method-assign]
        cls.__delattr__ = _frozen_delattr  # type: ignore[assignment, method-assign]
    return cls


@overload
def record(cls: type[T], /) -> type[T]: ...
@overload
def record(
    *, frozen: bool = False, eq: bool = True, slots: bool = False
) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(field_specifiers=(field,))
def record(
    cls: type[T] | None = None, /, *, frozen: bool = False, eq: bool = True, slots: bool = False
) -> Any:
    """Class decorator: ``@record`` or ``@record(frozen=True, eq=..., slots=...)``."""

    def wrap(c: type[T]) -> type[T]:
        return _build(c, frozen, eq, slots)

    return wrap(cls) if cls is not None else wrap


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of record ``obj`` with ``changes``; fields with a factory are copied as they are."""
    fields = getattr(type(obj), _FIELDS, None)
    if fields is None:
        raise TypeError(f"replace() wants a record, not {type(obj).__name__}")
    unknown = changes.keys() - {f.name for f in fields}
    if unknown:
        raise TypeError(f"replace(): {type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values = {f.name: changes.get(f.name, getattr(obj, f.name, _MISSING)) for f in fields}
    return type(obj)(**{k: v for k, v in values.items() if v is not _MISSING})
