"""The TensorFlow tensor-bundle reader: a bundle written here byte by byte (LevelDB table +
protobuf entries, as TensorFlow lays them out), and the official KinD checkpoints of the parity
fixture (skipped without ../shared)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from lumen_cli.errors import WeightsError
from lumen_cli.weights import tf_bundle as tb

FIXTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "parity" / "kind"


# -- a minimal writer (only for these tests) ------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload: bytes | int) -> bytes:
    tag = _varint(num << 3 | wire)
    if wire == 0:
        return tag + _varint(payload)
    if wire == 5:
        return tag + struct.pack("<I", payload)
    return tag + _varint(len(payload)) + payload


def _block(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """Prefix-compressed entries with a restart point every 2 keys, then the restart array."""
    out, restarts, prev = bytearray(), [], b""
    for i, (k, v) in enumerate(pairs):
        shared = 0
        if i % 2:
            while shared < min(len(k), len(prev)) and k[shared] == prev[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += _varint(shared) + _varint(len(k) - shared) + _varint(len(v)) + k[shared:] + v
        prev = k
    for r in restarts:
        out += struct.pack("<I", r)
    return bytes(out + struct.pack("<I", len(restarts)))


def _with_trailer(block: bytes) -> bytes:
    return block + b"\0" + struct.pack("<I", tb.mask_crc(tb.crc32c(block + b"\0")))


def write_bundle(prefix: Path, tensors: dict[str, np.ndarray], dtype_code: int = 1) -> None:
    data, pairs = bytearray(), []
    pairs.append((b"", _field(1, 0, 1)))  # header: 1 shard, little-endian
    for name in sorted(tensors):
        arr = np.array(tensors[name], order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
        raw = arr.tobytes()
        dims = b"".join(_field(2, 2, _field(1, 0, d)) for d in arr.shape)
        entry = (
            _field(1, 0, dtype_code)
            + _field(2, 2, dims)
            + _field(4, 0, len(data))
            + _field(5, 0, len(raw))
            + _field(6, 5, tb.mask_crc(tb.crc32c(raw)))
        )
        pairs.append((name.encode(), entry))
        data += raw
    table = bytearray()
    blocks = [pairs[: len(pairs) // 2], pairs[len(pairs) // 2 :]]  # two data blocks
    index = []
    for b in blocks:
        blk = _block(b)
        index.append((b[-1][0], _varint(len(table)) + _varint(len(blk))))
        table += _with_trailer(blk)
    meta = _block([])
    meta_handle = _varint(len(table)) + _varint(len(meta))
    table += _with_trailer(meta)
    iblk = _block(index)
    index_handle = _varint(len(table)) + _varint(len(iblk))
    table += _with_trailer(iblk)
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", tb.TABLE_MAGIC)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.index").write_bytes(bytes(table + footer))
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))
    (prefix.parent / "checkpoint").write_text(f'model_checkpoint_path: "{prefix.name}"\n')


# -- tests ----------------------------------------------------------------------------------
def test_crc32c_known_value():
    assert tb.crc32c(b"123456789") == 0xE3069283
    assert tb.crc32c(b"6789", tb.crc32c(b"12345")) == 0xE3069283


def test_hand_made_bundle_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "Net/conv1/weights": rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
        "Net/conv1/biases": rng.standard_normal(4).astype(np.float32),
        "Net/conv2/weights": rng.standard_normal((1, 1, 4, 1)).astype(np.float32),
        "Net/scalar": np.array(2.5, np.float32),
        "Other/x": rng.standard_normal((200,)).astype(np.float32),
    }
    write_bundle(tmp_path / "ck" / "model.ckpt", tensors)
    for where in (
        "ck",
        "ck/model.ckpt.index",
        "ck/model.ckpt.data-00000-of-00001",
        "ck/model.ckpt",
    ):
        got = tb.read_bundle(tmp_path / where)
        assert set(got) == set(tensors)
        for k, v in tensors.items():
            assert got[k].shape == v.shape and got[k].dtype == np.float32
            np.testing.assert_array_equal(got[k], v)


def test_corrupt_tensor_is_refused(tmp_path):
    write_bundle(tmp_path / "model.ckpt", {"a": np.arange(6, dtype=np.float32).reshape(2, 3)})
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[5] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="checksum"):
        tb.read_bundle(tmp_path)
    assert tb.read_bundle(tmp_path, verify=False)["a"].shape == (2, 3)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.index").write_bytes(b"\0" * 64)
    with pytest.raises(WeightsError, match="magic"):
        tb.read_bundle(tmp_path / "x.index")
    with pytest.raises(WeightsError, match="not a TensorFlow checkpoint"):
        tb.checkpoint_prefix(tmp_path / "nothing.bin")


def test_official_kind_checkpoints_decode():
    if not FIXTURE.is_dir():
        pytest.skip("parity fixture ../shared/parity/kind not present")
    shapes = json.loads((FIXTURE / "full_shapes.json").read_text())
    cases = [
        ("tf/decom_net_train", "kind"),
        ("tf/illumination_adjust_net_train", "kind"),
        ("tf_kindpp/decom_model", "kindpp"),
        ("tf_kindpp/illu_model", "kindpp"),
    ]
    for folder, model in cases:
        key = f"checkpoint/{Path(folder).name}/model.ckpt"
        ref = shapes[model]["files"][key]
        got = tb.read_bundle(FIXTURE / folder)
        assert {k: list(v.shape) for k, v in got.items()} == ref["state_dict"]
        assert sum(v.size for v in got.values()) == ref["params"]
        _, entries = tb.read_index(tb.checkpoint_prefix(FIXTURE / folder))
        layout = {k: {"offset": e.offset, "size": e.size} for k, e in entries.items()}
        assert layout == ref["data_file_layout"]
