"""Read TensorFlow V2 checkpoints ("tensor bundles") without TensorFlow.

A checkpoint ``<dir>/model.ckpt`` is three files:

- ``<dir>/checkpoint``: one text line ``model_checkpoint_path: "model.ckpt"`` (a prefix,
  relative to the folder), written by ``tf.train.Saver``;
- ``<prefix>.index``: a LevelDB-format sorted table (SSTable). The entry with the empty key
  is a ``BundleHeaderProto`` (number of shards, endianness); every other key is a variable
  name (``DecomNet/g_conv1_1/weights``) whose value is a ``BundleEntryProto``: dtype, shape,
  shard, byte offset and size in the data file, and a masked CRC-32C of the bytes;
- ``<prefix>.data-00000-of-00001``: the raw tensors, C order, at those offsets.

This module parses the table blocks and the few protobuf fields itself (varints, length
prefixes), reads each tensor by offset and size into a numpy array of the stored shape, and
checks every CRC-32C (pure Python, about 0.1 s per MB; ``verify=False`` skips it). Only
uncompressed tables and plain numeric tensors are supported: snappy-compressed blocks,
strings and partitioned (sliced) variables are refused with a ``WeightsError``.

Layouts are TensorFlow's (conv kernels ``[kh, kw, in, out]``); converting them to PyTorch's
is the caller's job.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lumen_cli.errors import WeightsError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5  # 1 byte compression type + 4 bytes masked crc32c

# tensorflow/core/framework/types.proto DataType -> numpy dtype (little-endian)
DTYPES: dict[int, str] = {
    1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8",
    10: "?", 17: "<u2", 19: "<f2", 22: "<u4", 23: "<u8",
}  # fmt: skip
_BF16 = 14  # bfloat16: read as uint16 and widened to float32


# -- CRC-32C (Castagnoli), as LevelDB / TensorFlow mask it ----------------------------------
def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data`` (continuing from ``crc``), table driven, pure Python."""
    t = _CRC_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def mask_crc(c: int) -> int:
    """LevelDB's masked CRC: rotate right by 15 bits, add a constant (mod 2**32)."""
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# -- protobuf wire format ---------------------------------------------------------------------
def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``: (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WeightsError("truncated varint in TensorFlow checkpoint index")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WeightsError("malformed varint in TensorFlow checkpoint index")


def proto_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """The (field number, wire type, value) triples of a serialised protobuf message.
    Varints and fixed-width values are ints; length-delimited ones are bytes."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            value = bytes(buf[pos : pos + n])
            pos += n
        elif wire == 5:
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        else:
            raise WeightsError(f"unsupported protobuf wire type {wire} in checkpoint index")
        out.append((field, wire, value))
    if pos != len(buf):
        raise WeightsError("truncated protobuf message in checkpoint index")
    return out


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives: TF dtype enum, shape, shard, byte offset/size, masked crc32c."""

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None


def parse_entry(name: str, value: bytes) -> BundleEntry:
    """Decode a ``BundleEntryProto``."""
    dtype, shape, shard, offset, size, crc = 0, (), 0, 0, 0, None
    for field, _, v in proto_fields(value):
        if field == 1:
            dtype = v
        elif field == 2:
            dims = []
            for f2, _, d in proto_fields(v):
                if f2 == 2:  # TensorShapeProto.dim: field 1 = size
                    sizes = [s for f3, _, s in proto_fields(d) if f3 == 1]
                    dims.append(sizes[0] if sizes else 0)
                elif f2 == 3 and d:
                    raise WeightsError(f"{name}: tensor of unknown rank")
            shape = tuple(dims)
        elif field == 3:
            shard = v
        elif field == 4:
            offset = v
        elif field == 5:
            size = v
        elif field == 6:
            crc = v
        elif field == 7:
            raise WeightsError(f"{name}: partitioned (sliced) variables are not supported")
    return BundleEntry(dtype, shape, shard, offset, size, crc)


# -- the sorted table -----------------------------------------------------------------------
def _block(data: bytes, offset: int, size: int, verify: bool) -> bytes:
    end = offset + size
    if end + BLOCK_TRAILER > len(data):
        raise WeightsError("checkpoint index: block handle points past the end of the file")
    kind = data[end]
    if kind != 0:
        raise WeightsError(
            f"checkpoint index: compressed table block (type {kind}); only uncompressed "
            "tables (TensorFlow's default for checkpoints) are supported"
        )
    if verify:
        (stored,) = struct.unpack_from("<I", data, end + 1)
        if mask_crc(crc32c(data[offset : end + 1])) != stored:
            raise WeightsError("checkpoint index: block checksum mismatch (corrupt file?)")
    return data[offset:end]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one table block (prefix-compressed keys, then the restart array)."""
    if len(block) < 4:
        raise WeightsError("checkpoint index: block too short")
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise WeightsError("checkpoint index: malformed block")
    out, pos, key = [], 0, b""
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        vlen, pos = read_varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + vlen]))
        pos += vlen
    return out


def read_table(data: bytes, verify: bool = True) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-format table, in key order."""
    if len(data) < FOOTER_SIZE:
        raise WeightsError("not a TensorFlow checkpoint index (file too short)")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise WeightsError("not a TensorFlow checkpoint index (bad table magic number)")
    pos = 0
    _, pos = read_varint(footer, pos)  # metaindex handle: unused
    _, pos = read_varint(footer, pos)
    index_off, pos = read_varint(footer, pos)
    index_size, pos = read_varint(footer, pos)
    out = []
    for _, handle in _block_entries(_block(data, index_off, index_size, verify)):
        off, p = read_varint(handle, 0)
        size, _ = read_varint(handle, p)
        out.extend(_block_entries(_block(data, off, size, verify)))
    return out


# -- bundles --------------------------------------------------------------------------------
def checkpoint_prefix(path: str | os.PathLike) -> Path:
    """The bundle prefix (``.../model.ckpt``) for a checkpoint folder (read from its
    ``checkpoint`` file, else its only ``*.index``), an ``.index`` / ``.data-*`` file, or a
    prefix given directly."""
    p = Path(path)
    if p.is_dir():
        state = p / "checkpoint"
        if state.is_file():
            m = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(), re.M)
            if m:
                name = Path(m.group(1))
                # the path may be absolute from the training machine: keep the file name
                cand = p / name if not name.is_absolute() else p / name.name
                if cand.with_name(cand.name + ".index").is_file():
                    return cand
        idx = sorted(p.glob("*.index"))
        if len(idx) == 1:
            return idx[0].with_suffix("")
        raise WeightsError(f"{p}: no TensorFlow checkpoint here (need one *.index file)")
    if p.suffix == ".index":
        return p.with_suffix("")
    m = re.match(r"(.*)\.data-\d{5}-of-\d{5}$", p.name)
    if m:
        return p.with_name(m.group(1))
    if p.with_name(p.name + ".index").is_file():
        return p
    raise WeightsError(f"{p}: not a TensorFlow checkpoint (folder, .index or .data file)")


def read_index(
    prefix: str | os.PathLike, verify: bool = True
) -> tuple[int, dict[str, BundleEntry]]:
    """(number of shards, {variable name: BundleEntry}) from ``<prefix>.index``."""
    path = Path(str(prefix) + ".index")
    if not path.is_file():
        raise WeightsError(f"TensorFlow checkpoint index not found: {path}")
    shards, entries = 1, {}
    for key, value in read_table(path.read_bytes(), verify):
        if key == b"":  # BundleHeaderProto
            for field, _, v in proto_fields(value):
                if field == 1:
                    shards = v
                elif field == 2 and v != 0:
                    raise WeightsError(f"{path}: big-endian checkpoints are not supported")
            continue
        name = key.decode("utf-8")
        entries[name] = parse_entry(name, value)
    return shards, entries


def read_bundle(path: str | os.PathLike, verify: bool = True) -> dict[str, np.ndarray]:
    """Every tensor of a TensorFlow V2 checkpoint: {variable name: numpy array}, TF layout.

    ``path``: a checkpoint folder, its ``.index`` or ``.data-*`` file, or the prefix.
    ``verify`` checks the table's and every tensor's CRC-32C.
    """
    prefix = checkpoint_prefix(path)
    shards, entries = read_index(prefix, verify)
    blobs: dict[int, bytes] = {}
    out = {}
    for name, e in sorted(entries.items()):
        if e.dtype not in DTYPES and e.dtype != _BF16:
            raise WeightsError(f"{prefix}: {name} has unsupported TensorFlow dtype {e.dtype}")
        if e.shard not in blobs:
            data = Path(f"{prefix}.data-{e.shard:05d}-of-{shards:05d}")
            if not data.is_file():
                raise WeightsError(f"TensorFlow checkpoint data file not found: {data}")
            blobs[e.shard] = data.read_bytes()
        raw = blobs[e.shard][e.offset : e.offset + e.size]
        if len(raw) != e.size:
            raise WeightsError(f"{prefix}: {name} lies past the end of its data file")
        if verify and e.crc32c is not None and mask_crc(crc32c(raw)) != e.crc32c:
            raise WeightsError(f"{prefix}: checksum mismatch in {name} (corrupt file?)")
        if e.dtype == _BF16:
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, DTYPES[e.dtype])
        n = int(np.prod(e.shape, dtype=np.int64))
        if arr.size != n:
            raise WeightsError(f"{prefix}: {name}: {e.size} bytes do not hold shape {e.shape}")
        out[name] = arr.reshape(e.shape).copy()
    return out
