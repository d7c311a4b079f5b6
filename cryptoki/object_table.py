"""ObjectTable: the objects of one token in this process, by handle.

Owns: the handle → object maps (token objects; this process's session objects), adding and
removing objects (a removed object is marked invalid, so a handle or an operation that still
holds it fails instead of reaching whatever took its place), and keeping the store-backed token
objects in line with the metadata file (:meth:`sync`): objects another process destroyed go, new
ones appear with new handles, changed attributes and overrides follow; objects that still exist
keep their handles.
Must not: talk to the chip, read or write the metadata file (the token hands it the records), or
decide access.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from cryptoki.objects import Pkcs11Object, StoreKind

#: Store kinds whose whole attribute set is in their record (no overrides apply).
_RECORDED = frozenset({StoreKind.CREATED, StoreKind.COPY})


class ObjectTable:
    """Token and session objects of one token.

    :param new_handle: the library's process-wide handle counter (handles are never reused).
    """

    def __init__(self, new_handle: Callable[[], int]) -> None:
        self.new_handle = new_handle
        self._token: dict[int, Pkcs11Object] = {}
        self._session: dict[int, Pkcs11Object] = {}

    def get(self, handle: int) -> Pkcs11Object | None:
        obj = self._session.get(handle)
        return obj if obj is not None else self._token.get(handle)

    def __iter__(self) -> Iterator[Pkcs11Object]:
        yield from list(self._token.values())
        yield from list(self._session.values())

    def session_objects(self, session: int | None = None) -> list[Pkcs11Object]:
        """Session objects of ``session`` (all of them when None)."""
        return [o for o in self._session.values() if session is None or o.owner_session == session]

    def add(self, obj: Pkcs11Object) -> Pkcs11Object:
        """Put ``obj`` in the table: session objects by their owner, the rest as token objects."""
        (self._token if obj.owner_session is None else self._session)[obj.handle] = obj
        return obj

    def remove(self, obj: Pkcs11Object) -> None:
        """Forget ``obj`` and mark it invalid (copies of it become invalid with it)."""
        self._token.pop(obj.handle, None)
        self._session.pop(obj.handle, None)
        obj.valid = False

    def remove_where(self, doomed: Callable[[Pkcs11Object], bool]) -> None:
        for obj in list(self):
            if doomed(obj):
                self.remove(obj)

    def sync(
        self,
        kinds: frozenset[StoreKind],
        wanted: dict[str, Callable[[int], Pkcs11Object]],
        recorded_attrs: dict[str, dict[int, Any]],
    ) -> None:
        """Bring the token objects of the store ``kinds`` in line with the metadata file.

        :param wanted: store key → builder, for every such object the file holds now.
        :param recorded_attrs: store key → attributes, for objects whose attributes live in
            their record (created objects, token copies), which another process may change.
        """
        present: set[str] = set()
        for obj in list(self._token.values()):
            key = obj.store_key
            if key is None or key.kind not in kinds:
                continue
            name = str(key)
            if name not in wanted:
                self.remove(obj)  # destroyed by another process (or by us)
                continue
            present.add(name)
            attrs = recorded_attrs.get(name)
            if attrs is not None and attrs != obj.attrs:
                obj.set_attrs(attrs)  # changed by another process
        for name, build in wanted.items():
            if name not in present:
                self.add(build(self.new_handle()))

    def apply_overrides(self, overrides: dict[str, dict[int, Any]]) -> None:
        """Show the metadata file's attribute overrides on the objects whose attributes are not
        recorded whole (chip-defined, configured, generated objects)."""
        for obj in self._token.values():
            key = obj.store_key
            if key is not None and key.kind not in _RECORDED:
                obj.apply_overrides(overrides.get(str(key), {}))

    def clear(self) -> None:
        """Forget every object (C_InitToken): all handles become invalid."""
        for obj in list(self):
            self.remove(obj)

    def by_name(self, name: str) -> Pkcs11Object | None:
        """The token object whose store key is spelt ``name`` (as the metadata file writes it)."""
        for obj in self._token.values():
            if obj.store_key is not None and str(obj.store_key) == name:
                return obj
        return None
