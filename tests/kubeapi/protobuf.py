"""Just enough of Kubernetes' protobuf encoding to accept what ``kubectl create <kind>`` sends.

Typed client-go clients (``kubectl create configmap|secret|namespace|serviceaccount``)
POST ``application/vnd.kubernetes.protobuf``: the bytes ``k8s\\x00`` then a
``runtime.Unknown`` message wrapping the object's own protobuf. This module decodes
the wire format and maps field numbers to JSON names for those few kinds (numbers
from k8s.io/api/core/v1/generated.proto). Other kinds answer 415, as documented.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """Raw ``(field number, wire type, value)`` triples of one message."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wt == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wt == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.append((num, wt, val))
    return out


# Schemas: field number -> (json name, type). Types: "str", "bytes", "bool", "int",
# "map" (map<string,string>), "bmap" (map<string,bytes>), "[str]", or a nested schema dict,
# or ("[msg]", schema) for repeated messages.
_TIME = "time"
_OWNER = {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str"),
          6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")}
_META = {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"),
         5: ("uid", "str"), 6: ("resourceVersion", "str"), 7: ("generation", "int"),
         11: ("labels", "map"), 12: ("annotations", "map"),
         13: ("ownerReferences", ("[msg]", _OWNER)), 14: ("finalizers", "[str]")}
_REF = {1: ("name", "str")}
SCHEMAS: dict[str, dict[int, Any]] = {
    "ConfigMap": {1: ("metadata", _META), 2: ("data", "map"), 3: ("binaryData", "bmap"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", _META), 2: ("data", "bmap"), 3: ("type", "str"),
               4: ("stringData", "map"), 5: ("immutable", "bool")},
    "Namespace": {1: ("metadata", _META), 2: ("spec", {1: ("finalizers", "[str]")})},
    "ServiceAccount": {1: ("metadata", _META), 2: ("secrets", ("[msg]", {4: ("name", "str")})),
                       3: ("imagePullSecrets", ("[msg]", _REF)),
                       4: ("automountServiceAccountToken", "bool")},
}


def _message(buf: bytes, schema: dict[int, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, _, val in fields(buf):
        if num not in schema:
            continue
        name, typ = schema[num]
        if typ == "str":
            if val:  # gogo-protobuf writes empty strings; JSON would omit them
                out[name] = val.decode()
        elif typ == "bytes":
            out[name] = base64.b64encode(val).decode()
        elif typ == "bool":
            out[name] = bool(val)
        elif typ == "int":
            if val:
                out[name] = val
        elif typ in ("map", "bmap"):
            entry = {n: v for n, _, v in fields(val)}
            value = entry.get(2, b"")
            out.setdefault(name, {})[entry.get(1, b"").decode()] = (
                value.decode() if typ == "map" else base64.b64encode(value).decode())
        elif typ == "[str]":
            out.setdefault(name, []).append(val.decode())
        elif isinstance(typ, tuple):
            out.setdefault(name, []).append(_message(val, typ[1]))
        elif isinstance(typ, dict):
            out[name] = _message(val, typ)
    return out


def decode(raw: bytes) -> dict[str, Any]:
    """Decode a ``k8s\\x00``-prefixed protobuf body; ``ValueError`` for unknown kinds."""
    if not raw.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf envelope")
    envelope = {n: v for n, _, v in fields(raw[len(MAGIC):])}
    type_meta = {n: v.decode() for n, _, v in fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if kind not in SCHEMAS:
        raise ValueError(f"protobuf bodies of kind {kind or '?'} are not supported by the double")
    obj = _message(envelope.get(2, b""), SCHEMAS[kind])
    return {"apiVersion": api_version, "kind": kind, **obj}
