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

from cryptoki.objects import Pkcs11Object, StoreKey


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
        wanted: dict[str, Callable[[int], Pkcs11Object]],
        created_attrs: dict[str, dict[int, Any]],
        overrides: dict[str, dict[int, Any]],
    ) -> None:
        """Bring the store-backed token objects in line with the metadata file.

        :param wanted: store key → builder, for every store-backed object the file holds now.
        :param created_attrs: store key → attributes, for created objects (which another
            process may have changed).
        :param overrides: store key → attribute overrides of objects the chip or slot file
            defines (label, ID... changed with C_SetAttributeValue).
        """
        present: set[str] = set()
        for obj in list(self._token.values()):
            key = obj.store_key
            if key is None or not key.kind.store_backed:
                continue
            name = str(key)
            if name not in wanted:
                self.remove(obj)  # destroyed by another process (or by us)
                continue
            present.add(name)
            attrs = created_attrs.get(name)
            if attrs is not None and attrs != obj.attrs:
                obj.set_attrs(attrs)  # changed by another process
        for name, build in wanted.items():
            if name not in present:
                self.add(build(self.new_handle()))
        for obj in self._token.values():
            if obj.store_key is not None and str(obj.store_key) not in created_attrs:
                obj.apply_overrides(overrides.get(str(obj.store_key), {}))

    def by_store_key(self, key: StoreKey) -> Pkcs11Object | None:
        for obj in self:
            if obj.store_key == key:
                return obj
        return None
