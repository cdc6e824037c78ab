"""Read TFRecord files of ``tf.train.Example`` records without TensorFlow or protobuf.

TFRecord framing (one record)::

    uint64  length            (little endian)
    uint32  masked_crc32c(length bytes)
    byte    data[length]
    uint32  masked_crc32c(data)

``data`` is a serialized ``tf.train.Example``::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }   # map entry: key = 1, value = 2
    Feature   { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed]; }
    Int64List { repeated int64 value = 1 [packed]; }

Only the protobuf wire format is needed to decode that, so a small varint parser does it.
Kaggle's ``gan-getting-started`` TFRecords hold features ``image_name`` (bytes),
``image`` (JPEG bytes) and ``target`` (bytes).
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

from cyclegan.common.errors import UserError

__all__ = [
    "TFRecordError",
    "crc32c",
    "masked_crc32c",
    "index_records",
    "read_record",
    "iter_records",
    "parse_example",
    "iter_examples",
    "tfrecord_files",
]

_HEADER = struct.Struct("<QI")  # length, masked crc of length
_FOOTER = struct.Struct("<I")  # masked crc of data


class TFRecordError(UserError, ValueError):
    """A TFRecord file or an Example record is malformed."""


# ----------------------------------------------------------------------------- CRC32C
def _make_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def _crc32c_py(data: bytes, crc: int = 0) -> int:
    table = _TABLE
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # optional fast implementations; neither is a dependency
    import google_crc32c as _gcrc  # type: ignore

    def crc32c(data: bytes) -> int:
        """CRC-32C (Castagnoli) of ``data``."""
        return _gcrc.value(bytes(data))

except ImportError:  # pragma: no cover - depends on the environment
    try:
        import crc32c as _crcmod  # type: ignore

        def crc32c(data: bytes) -> int:
            """CRC-32C (Castagnoli) of ``data``."""
            return _crcmod.crc32c(bytes(data))

    except ImportError:

        def crc32c(data: bytes) -> int:
            """CRC-32C (Castagnoli) of ``data`` (pure Python, ~1-2 MB/s)."""
            return _crc32c_py(data)


def masked_crc32c(data: bytes) -> int:
    """The masked CRC TFRecord stores: rotate right by 15 and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- framing
def index_records(path: str | os.PathLike, verify: bool = True) -> list[tuple[int, int]]:
    """Scan a TFRecord file's framing and return ``(data_offset, data_length)`` per record.

    Only the 12-byte headers are read (the payloads are skipped with ``seek``), so this is
    fast. With ``verify`` the length CRC is checked; a bad length CRC or a truncated record
    means the rest of the file cannot be framed: a warning is issued and the records found
    so far are returned.
    """
    path = os.fspath(path)
    out: list[tuple[int, int]] = []
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                warnings.warn(f"{path}: truncated record header at byte {pos}; ignoring the rest of the file")
                break
            length, length_crc = _HEADER.unpack(head)
            if verify and masked_crc32c(head[:8]) != length_crc:
                warnings.warn(
                    f"{path}: corrupt record length at byte {pos} (CRC mismatch); ignoring the rest of the file"
                )
                break
            data_offset = pos + _HEADER.size
            end = data_offset + length + _FOOTER.size
            if end > size:
                warnings.warn(f"{path}: truncated record at byte {pos}; ignoring the rest of the file")
                break
            out.append((data_offset, length))
            f.seek(end)
            pos = end
    return out


def read_record(path: str | os.PathLike, offset: int, length: int, verify: bool = False) -> bytes:
    """Read one record's payload at ``offset`` (from :func:`index_records`).

    With ``verify`` the data CRC is checked and :class:`TFRecordError` raised on mismatch.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length + _FOOTER.size)
    if len(data) != length + _FOOTER.size:
        raise TFRecordError(f"{os.fspath(path)}: truncated record at byte {offset}")
    payload = data[:length]
    if verify:
        (crc,) = _FOOTER.unpack(data[length:])
        if masked_crc32c(payload) != crc:
            raise TFRecordError(f"{os.fspath(path)}: corrupt record at byte {offset} (data CRC mismatch)")
    return payload


def iter_records(path: str | os.PathLike, verify: bool = True) -> Iterator[bytes]:
    """Yield the payload of every record; corrupt records are skipped with a warning."""
    for offset, length in index_records(path, verify=verify):
        try:
            yield read_record(path, offset, length, verify=verify)
        except TFRecordError as err:
            warnings.warn(f"skipping record: {err}")


# ----------------------------------------------------------------------------- protobuf wire format
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise TFRecordError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise TFRecordError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """Yield ``(field_number, wire_type, value)``; length-delimited values are ``bytes``."""
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise TFRecordError("truncated 64-bit field")
            value = buf[pos : pos + 8]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > n:
                raise TFRecordError("truncated length-delimited field")
            value = buf[pos : pos + length]
            pos += length
        elif wire == 5:
            if pos + 4 > n:
                raise TFRecordError("truncated 32-bit field")
            value = buf[pos : pos + 4]
            pos += 4
        else:
            raise TFRecordError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _to_int64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _parse_feature(buf: bytes) -> list:
    values: list = []
    for field, wire, value in _fields(buf):
        if field == 1 and wire == 2:  # BytesList
            values = [bytes(v) for f, w, v in _fields(value) if f == 1 and w == 2]
        elif field == 2 and wire == 2:  # FloatList
            values = []
            for f, w, v in _fields(value):
                if f != 1:
                    continue
                if w == 2:  # packed
                    values.extend(x for (x,) in struct.iter_unpack("<f", v))
                elif w == 5:
                    values.append(struct.unpack("<f", v)[0])
        elif field == 3 and wire == 2:  # Int64List
            values = []
            for f, w, v in _fields(value):
                if f != 1:
                    continue
                if w == 2:  # packed
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        values.append(_to_int64(x))
                elif w == 0:
                    values.append(_to_int64(v))
    return values


def parse_example(buf: bytes) -> dict[str, list]:
    """Decode a serialized ``tf.train.Example`` into ``{name: [values]}``.

    Bytes features give ``list[bytes]``, float features ``list[float]``, int64 features
    ``list[int]``. Raises :class:`TFRecordError` on malformed input.
    """
    buf = memoryview(buf).tobytes() if not isinstance(buf, bytes) else buf
    out: dict[str, list] = {}
    for field, wire, features in _fields(buf):
        if field != 1 or wire != 2:
            continue
        for f, w, entry in _fields(features):
            if f != 1 or w != 2:
                continue
            key = b""
            feature = b""
            for ef, ew, ev in _fields(entry):
                if ef == 1 and ew == 2:
                    key = ev
                elif ef == 2 and ew == 2:
                    feature = ev
            out[key.decode("utf-8", errors="replace")] = _parse_feature(feature)
    return out


def iter_examples(path: str | os.PathLike, verify: bool = True) -> Iterator[dict[str, list]]:
    """Yield parsed Examples of a TFRecord file; corrupt records are skipped with a warning."""
    for i, payload in enumerate(iter_records(path, verify=verify)):
        try:
            yield parse_example(payload)
        except TFRecordError as e:
            warnings.warn(f"{os.fspath(path)}: skipping record {i}: {e}")


def tfrecord_files(folder: str | os.PathLike) -> list[Path]:
    """Sorted ``*.tfrec`` / ``*.tfrecord`` files directly in ``folder`` (or the file itself)."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".tfrec", ".tfrecord", ".tfrecords")
    )
