import pytest
import torch

from lumen_cli import devices
from lumen_cli.errors import DeviceError
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline
from lumen_cli.pipelines.run import enhance_image


def test_auto_and_cpu():
    assert devices.pick_device("cpu").type == "cpu"
    assert devices.pick_device("auto").type in {"cpu", "cuda", "mps"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_forced_missing_cuda_is_an_error():
    with pytest.raises(DeviceError, match="no CUDA device"):
        devices.pick_device("cuda:1")
    with pytest.raises(DeviceError):
        devices.pick_device("cuda")


def test_bad_specs():
    with pytest.raises(DeviceError):
        devices.pick_device("gpu")
    with pytest.raises(DeviceError):
        devices.resolve_precision("fp8", torch.device("cpu"))
    with pytest.raises(DeviceError, match="fp16"):
        devices.resolve_precision("fp16", torch.device("cpu"))


def test_auto_precision_follows_cpu_features(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: True)
    assert devices.resolve_precision("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: False)
    assert devices.resolve_precision("auto", cpu) is torch.float32


def test_generator_is_seeded_on_cpu():
    a = devices.randn((4,), devices.make_generator(7), torch.device("cpu"))
    b = devices.randn((4,), devices.make_generator(7), torch.device("cpu"))
    assert torch.equal(a, b)
    assert devices.make_generator(7).device.type == "cpu"


def test_configure_cpu_flushes_denormals():
    devices.configure_cpu(1)
    tiny = torch.tensor([1e-42], dtype=torch.float32)
    assert (tiny * 1.0).item() == 0.0
    assert torch.get_num_threads() == 1


def test_cgroup_cpu_limit(tmp_path):
    assert devices.cgroup_cpu_limit(str(tmp_path)) is None  # no files: unknown
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert devices.cgroup_cpu_limit(str(tmp_path)) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert devices.cgroup_cpu_limit(str(tmp_path)) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert devices.cgroup_cpu_limit(str(v1)) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("400000")
    assert devices.cgroup_cpu_limit(str(v1)) == 4.0


def test_default_threads_respects_the_quota(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        monkeypatch.setattr(
            devices.os, "sched_getaffinity", lambda pid: set(range(6)), raising=False
        )
        monkeypatch.setattr(devices, "cgroup_cpu_limit", lambda: None)
        assert devices.default_threads() == 6
        monkeypatch.setattr(devices, "cgroup_cpu_limit", lambda: 2.5)
        assert devices.default_threads() == 3
        monkeypatch.setattr(devices, "cgroup_cpu_limit", lambda: 0.2)
        assert devices.default_threads() == 1
    finally:
        torch.set_num_threads(before)


class _NaNInBF16(Pipeline):
    """Returns NaN whenever autocast to bf16 is active: the runner must redo it in fp32."""

    def enhance(self, x, ctx, region, opts):
        if torch.is_autocast_enabled("cpu"):
            return torch.full_like(x, float("nan"))
        return x * 0.5


def test_nan_in_reduced_precision_is_redone_in_fp32():
    x = torch.rand(1, 3, 16, 16)
    with pytest.warns(RuntimeWarning, match="fp32"):
        y = enhance_image(_NaNInBF16(), x, EnhanceOptions(), tile=None, precision="bf16")
    assert torch.allclose(y, x * 0.5)
