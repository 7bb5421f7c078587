"""Checkpoint files: save/load round trip, self-description, denormal flush, bad files."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from torch import nn

from lumen_cli.errors import WeightsError
from lumen_cli.nets import registry
from lumen_cli.weights import checkpoint as ckpt


class TinyNet(nn.Module):
    """(B,3,H,W) -> (B,3,H,W); one conv, one norm with running buffers, tied-free."""

    def __init__(self, width: int = 4, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1, bias=bias)
        self.norm = nn.BatchNorm2d(width)
        self.out = nn.Conv2d(width, 3, 1)

    def forward(self, x):
        return self.out(self.norm(self.conv(x)))


@pytest.fixture(autouse=True)
def tiny_arch(monkeypatch):
    monkeypatch.setitem(registry.ARCHS, "test.tiny", f"{__name__}:TinyNet")


def _nets(width=4):
    torch.manual_seed(0)
    nets = {
        "decom": registry.build_net("test.tiny", {"width": width}),
        "denoise": registry.build_net("test.tiny", {"width": 2, "bias": False}),
    }
    nets["decom"].norm.running_mean.fill_(0.25)  # a buffer that must survive the round trip
    return nets


def test_round_trip_rebuilds_same_nets(tmp_path):
    nets = _nets()
    path = tmp_path / "m.safetensors"
    digest = ckpt.save_nets(path, "kind", nets, {"lumen.provenance": {"steps": 10}, "note": "x"})
    assert digest == ckpt.sha256_file(path) and len(digest) == 64
    assert not [p for p in tmp_path.iterdir() if p.name != "m.safetensors"]  # no temp left

    method, loaded, meta = ckpt.load_nets(path)
    assert method == "kind"
    assert set(loaded) == {"decom", "denoise"}
    assert json.loads(meta["lumen.provenance"]) == {"steps": 10} and meta["note"] == "x"
    assert loaded["denoise"].conv.bias is None  # config travelled with the file
    assert loaded["decom"].lumen_config == {"width": 4}
    assert not loaded["decom"].training
    for name in nets:
        a, b = nets[name].state_dict(), loaded[name].state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    x = torch.rand(1, 3, 8, 8)
    nets["decom"].eval()
    assert torch.allclose(nets["decom"](x), loaded["decom"](x))


def test_metadata_is_self_describing(tmp_path):
    path = tmp_path / "m.safetensors"
    ckpt.save_nets(path, "kind", _nets())
    meta = ckpt.read_metadata(path)
    assert meta["lumen.format"] == "1" and meta["lumen.method"] == "kind"
    assert json.loads(meta["lumen.nets"])["denoise"] == {
        "arch": "test.tiny",
        "config": {"width": 2, "bias": False},
    }


def _n_subnormal(t: torch.Tensor) -> int:
    bits = t.view(torch.int32)
    return int((((bits & 0x7F800000) == 0) & ((bits & 0x007FFFFF) != 0)).sum())


def test_denormals_flushed_on_load(tmp_path):
    from safetensors import safe_open

    nets = _nets()
    with torch.no_grad():  # written as bits: FTZ may already be on in this process
        bits = nets["decom"].conv.weight.view(torch.int32)
        bits[0, 0, 0, 0] = 0x00011111  # +subnormal
        bits[0, 0, 0, 1] = -0x7FF00001  # 0x800FFFFF: -subnormal
        nets["decom"].conv.weight[0, 0, 0, 2] = 1e-30  # normal: kept
    path = tmp_path / "d.safetensors"
    ckpt.save_nets(path, "kind", nets)
    with safe_open(str(path), framework="pt") as f:
        assert _n_subnormal(f.get_tensor("decom.conv.weight")) == 2  # really in the file
    _, loaded, _ = ckpt.load_nets(path)
    lw = loaded["decom"].conv.weight
    assert lw.view(torch.int32)[0, 0, 0, :2].tolist() == [0, 0]
    assert lw[0, 0, 0, 2].item() == pytest.approx(1e-30)
    for t in loaded["decom"].state_dict().values():
        if t.dtype == torch.float32:
            assert _n_subnormal(t) == 0


def test_flush_denormals_counts_bf16():
    # built from bits: float conversions may already flush once set_flush_denormal is on
    t = torch.tensor([1, 0x3F80, 0, -32767, -32768], dtype=torch.int16).view(torch.bfloat16)
    assert ckpt.flush_denormals_(t) == 2
    assert t.view(torch.int16).tolist() == [0, 0x3F80, 0, 0, -32768]  # -0.0 kept as is


def test_save_needs_registry_built_nets(tmp_path):
    with pytest.raises(ValueError, match="build_net"):
        ckpt.save_nets(tmp_path / "x.safetensors", "kind", {"a": TinyNet()})


def test_not_a_safetensors_file(tmp_path):
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"\x80\x02this is a pickle, not safetensors" * 10)
    with pytest.raises(WeightsError, match="not a safetensors file"):
        ckpt.load_nets(bad)
    with pytest.raises(WeightsError, match="not found"):
        ckpt.load_nets(tmp_path / "absent.safetensors")


def test_safetensors_without_lumen_metadata(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, p, metadata={"format": "pt"})
    with pytest.raises(WeightsError, match="not written by `lumen train export`"):
        ckpt.load_nets(p)


def test_unknown_arch(tmp_path, monkeypatch):
    p = tmp_path / "m.safetensors"
    ckpt.save_nets(p, "kind", _nets())
    monkeypatch.delitem(registry.ARCHS, "test.tiny")
    with pytest.raises(WeightsError, match="unknown network architecture 'test.tiny'"):
        ckpt.load_nets(p)


def test_shape_mismatch(tmp_path):
    p = tmp_path / "m.safetensors"
    ckpt.save_nets(p, "kind", _nets())
    # rewrite the header so the config says width 8 while tensors have width 4
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    nets_meta = json.loads(header["__metadata__"]["lumen.nets"])
    nets_meta["decom"]["config"]["width"] = 8
    header["__metadata__"]["lumen.nets"] = json.dumps(nets_meta)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    p.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    with pytest.raises(WeightsError, match="do not fit its architecture"):
        ckpt.load_nets(p)


def test_truncated_file(tmp_path):
    p = tmp_path / "m.safetensors"
    ckpt.save_nets(p, "kind", _nets())
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(WeightsError):
        ckpt.load_nets(p)
