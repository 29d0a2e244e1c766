"""The record schema, and TFRecord / ``tf.train.Example`` bytes written without TensorFlow.

The generation image stays small because writing records needs only this
module: an Example is a short protobuf and a TFRecord frame is a length and two
masked CRC-32C checksums, both simple to produce byte for byte.

Record schema (one ``tf.train.Example`` per text-line image), version 1:

=================  ========  ==================================================
key                type      value
=================  ========  ==================================================
image/encoded      bytes     the image, JPEG or PNG, height 32, 3 channels
image/format       bytes     ``jpeg`` or ``png``
image/width        int64     width in pixels of the stored image
image/height       int64     height in pixels (32)
image/source       bytes     source image path, relative to the dataset dir
label/ids          int64[]   class index per character (see ``charset``)
label/length       int64     number of characters
label/text         bytes     the label, UTF-8, after the case policy
=================  ========  ==================================================

A page of the detection task (one Example per page; the manifest's ``task`` is ``detection``):

=================  ========  ==================================================
key                type      value
=================  ========  ==================================================
image/encoded      bytes     the page, JPEG or PNG, 3 channels
image/format       bytes     ``jpeg`` or ``png``
image/width        int64     width in pixels of the stored page
image/height       int64     height in pixels
image/source       bytes     source image path, relative to the dataset dir
regions/points     float[]   every region's points, ``x0, y0, x1, y1, ...``, in
                             stored pixels, region after region
regions/count      int64[]   the number of points of each region (4 or more)
regions/ignore     int64[]   1 for a don't-care region, else 0
regions/text       bytes[]   each region's transcription, UTF-8
=================  ========  ==================================================
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Iterator

import google_crc32c

SCHEMA_VERSION = 1
# Written last by the generator: a records directory without it is incomplete.
MANIFEST_FILE = "manifest.json"

IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_WIDTH = "image/width"
IMAGE_HEIGHT = "image/height"
IMAGE_SOURCE = "image/source"
LABEL_IDS = "label/ids"
LABEL_LENGTH = "label/length"
LABEL_TEXT = "label/text"
REGIONS_POINTS = "regions/points"
REGIONS_COUNT = "regions/count"
REGIONS_IGNORE = "regions/ignore"
REGIONS_TEXT = "regions/text"


def shard_name(split: str, shard: int, shards: int) -> str:
    """``train_feature.tfrecords``, or ``train_feature-00003-of-00008.tfrecords`` when sharded."""
    if shards == 1:
        return f"{split}_feature.tfrecords"
    return f"{split}_feature-{shard:05d}-of-{shards:05d}.tfrecords"


def text_line_example(
    image: bytes, image_format: str, width: int, height: int, source: str, ids: list[int], text: str
) -> bytes:
    """Serialized ``tf.train.Example`` of one sample, keys in sorted order (deterministic bytes)."""
    # Runs once per image in the workers: keep it to byte concatenation.
    entries = b"".join((
        _image_entries(image, image_format, width, height, source),
        _entry(LABEL_IDS, _int64_feature(b"".join(map(_varint, ids)))),
        _entry(LABEL_LENGTH, _int64_feature(_varint(len(ids)))),
        _entry(LABEL_TEXT, _bytes_feature(text.encode("utf-8"))),
    ))
    return _field(1, entries)  # Example.features


def page_example(image: bytes, image_format: str, width: int, height: int, source: str,
                 points: list[list[tuple[float, float]]], ignore: list[bool], texts: list[str]) -> bytes:
    """Serialized ``tf.train.Example`` of one page (the detection task), keys in sorted order."""
    flat = [value for region in points for point in region for value in point]
    entries = b"".join((
        _image_entries(image, image_format, width, height, source),
        _entry(REGIONS_COUNT, _int64_feature(b"".join(_varint(len(region)) for region in points))),
        _entry(REGIONS_IGNORE, _int64_feature(b"".join(_varint(int(flag)) for flag in ignore))),
        _entry(REGIONS_POINTS, _float_feature(struct.pack(f"<{len(flat)}f", *flat))),
        _entry(REGIONS_TEXT, _field(1, b"".join(_field(1, text.encode("utf-8")) for text in texts))),
    ))
    return _field(1, entries)


def _image_entries(image: bytes, image_format: str, width: int, height: int, source: str) -> bytes:
    """The ``image/*`` entries both kinds of record start with, in sorted key order."""
    return b"".join((
        _entry(IMAGE_ENCODED, _bytes_feature(image)),
        _entry(IMAGE_FORMAT, _bytes_feature(image_format.encode())),
        _entry(IMAGE_HEIGHT, _int64_feature(_varint(height))),
        _entry(IMAGE_SOURCE, _bytes_feature(source.encode("utf-8"))),
        _entry(IMAGE_WIDTH, _int64_feature(_varint(width))),
    ))


# -- protobuf wire format (only what Example needs) ------------------------------------------
_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    value &= (1 << 64) - 1  # negative int64 -> two's complement, as protobuf does
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


_KEY_FIELDS = {
    key: _field(1, key.encode())
    for key in (IMAGE_ENCODED, IMAGE_FORMAT, IMAGE_WIDTH, IMAGE_HEIGHT, IMAGE_SOURCE, LABEL_IDS, LABEL_LENGTH,
                LABEL_TEXT, REGIONS_POINTS, REGIONS_COUNT, REGIONS_IGNORE, REGIONS_TEXT)
}


def _entry(key: str, feature: bytes) -> bytes:
    """One entry of the Features map ({key = 1, value = 2}), as a field 1 of Features."""
    return _field(1, _KEY_FIELDS[key] + _field(2, feature))


def _bytes_feature(value: bytes) -> bytes:
    return _field(1, _field(1, value))  # Feature.bytes_list{value}


def _int64_feature(packed_varints: bytes) -> bytes:
    # Feature.int64_list{packed value*}; an empty list has no value field at all
    return _field(3, _field(1, packed_varints) if packed_varints else b"")


def _float_feature(packed_floats: bytes) -> bytes:
    return _field(2, _field(1, packed_floats) if packed_floats else b"")  # Feature.float_list{packed value*}


# -- TFRecord framing --------------------------------------------------------------------------
def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One TFRecord: length, CRC of length, data, CRC of data."""
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", _masked_crc(length)) + record + struct.pack("<I", _masked_crc(record))


def read_frames(handle: BinaryIO, name: str = "<stream>") -> Iterator[bytes]:
    """Records of a TFRecord stream, checksums verified; raises ValueError on damage."""
    while True:
        header = handle.read(12)
        if not header:
            return
        if len(header) < 12:
            raise ValueError(f"{name}: truncated record header")
        (length,) = struct.unpack("<Q", header[:8])
        if struct.unpack("<I", header[8:])[0] != _masked_crc(header[:8]):
            raise ValueError(f"{name}: bad length checksum")
        data = handle.read(length)
        footer = handle.read(4)
        if len(data) < length or len(footer) < 4:
            raise ValueError(f"{name}: truncated record")
        if struct.unpack("<I", footer)[0] != _masked_crc(data):
            raise ValueError(f"{name}: bad data checksum")
        yield data


def read_file(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from read_frames(handle, str(path))
