"""cryptoki.schema: one table per class, and every object the token builds follows it."""

from __future__ import annotations

import pytest

from cryptoki import errors, schema
from cryptoki.constants import CKA, CKO
from cryptoki.library import Library


def test_every_object_of_a_trust_and_go_token_carries_its_class_schema(tngtls_filestore) -> None:
    lib = Library(filestore=tngtls_filestore)
    lib.initialize(None)
    try:
        token = lib._slots[0].token
        objs = token.objects()
        assert {o.object_class for o in objs} >= {CKO.CERTIFICATE, CKO.PUBLIC_KEY, CKO.PRIVATE_KEY}
        for obj in objs:
            table = schema.schema_of(obj.attrs)
            assert schema.missing(table, obj.attrs) == [], obj.attrs.get(CKA.LABEL)
            assert set(obj.attrs) <= set(table), set(obj.attrs) - set(table)
    finally:
        lib.finalize()


def test_sensitive_attributes_follow_sensitive_and_extractable() -> None:
    table = schema.GENERIC_SECRET_KEY
    assert schema.hidden(table, {CKA.SENSITIVE: True, CKA.EXTRACTABLE: True}) == {CKA.VALUE}
    assert schema.hidden(table, {CKA.SENSITIVE: False, CKA.EXTRACTABLE: False}) == {CKA.VALUE}
    assert schema.hidden(table, {CKA.SENSITIVE: False, CKA.EXTRACTABLE: True}) == frozenset()


def test_copy_and_set_follow_the_flags() -> None:
    data = schema.complete(schema.DATA, {CKA.VALUE: b"x"})
    schema.check_set(schema.DATA, data, {CKA.VALUE: b"y"})  # fn 8 on data objects
    copy = schema.copy_values(schema.DATA, data, {CKA.VALUE: b"z", CKA.TOKEN: True})
    assert copy[CKA.VALUE] == b"z" and copy[CKA.TOKEN] is True
    with pytest.raises(errors.TemplateInconsistent):  # once false, COPYABLE stays false
        schema.copy_values(schema.DATA, {**data, CKA.COPYABLE: False}, {CKA.COPYABLE: True})
    with pytest.raises(errors.AttributeReadOnly):
        schema.check_set(schema.DATA, data, {CKA.CLASS: CKO.DATA})
    with pytest.raises(errors.ActionProhibited):
        schema.check_set(schema.DATA, {**data, CKA.MODIFIABLE: False}, {CKA.LABEL: "x"})
