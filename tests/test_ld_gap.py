"""benchmarks/ld_gap.py: the four renderings of one pair and the saturation measure."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import ld_gap  # noqa: E402

from lumen_cli.methods.lighten_diffusion.pipeline import LightenDiffusionPipeline  # noqa: E402


def test_saturation_of_grey_and_pure_colour():
    grey = torch.full((1, 3, 8, 8), 0.4)
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 0.7
    assert ld_gap.saturation(grey) == 0.0
    assert abs(ld_gap.saturation(red) - 1.0) < 1e-6


def test_measure_renders_output_and_oracles():
    torch.manual_seed(0)
    nets = LightenDiffusionPipeline.build_nets(
        "lite", {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    )
    pipe = LightenDiffusionPipeline(nets)
    pipe.default_steps = 2  # this instance only
    x, y = torch.rand(1, 3, 64, 128) * 0.2, torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        out = ld_gap.measure(pipe, x, y)
    assert list(out) == list(ld_gap.ROWS)
    for img in out.values():
        assert img.shape == x.shape and 0 <= img.min() and img.max() <= 1
    # the auto-encoder row is the reference through encoder and decoder alone
    z, skips = nets["decom"].encode(y)
    assert torch.allclose(out["auto-encoder"], nets["decom"].decode(z, skips).clamp(0, 1))
    # the exposure oracle row is the output under ceiling.exposure_oracle's gain
    expected = ld_gap.exposure_oracle(out["output, bright skips"], y).clamp(0, 1)
    assert torch.equal(out["output, exposure oracle"], expected)


def test_unpaired_autoencode_crops_to_the_latent_grid():
    import ld_unpaired

    torch.manual_seed(0)
    nets = LightenDiffusionPipeline.build_nets(
        "lite", {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    )
    y = torch.rand(1, 3, 100, 150)
    with torch.no_grad():
        out, crop = ld_unpaired.autoencode(nets["decom"], y)
    assert crop.shape == out.shape == (1, 3, 64, 128)
    assert torch.equal(crop, y[..., :64, :128]) and 0 <= out.min() and out.max() <= 1


def test_unpaired_bright_transfer_camera_capture_is_seeded_and_differs():
    """bright_transfer's camera-like capture (sensor noise + JPEG) is repeatable and not the
    plain Gaussian capture; both return a picture of y's cropped size in [0,1]."""
    import ld_unpaired

    torch.manual_seed(0)
    nets = LightenDiffusionPipeline.build_nets(
        "lite", {"decom": {"channels": 8}, "unet": {"ch": 32, "ch_mult": [1, 1, 2, 2]}}
    )
    y = ld_unpaired.crop64(torch.rand(1, 3, 70, 130) * 0.6 + 0.2)
    with torch.no_grad():
        plain = ld_unpaired.bright_transfer(nets["decom"], y)
        cam = ld_unpaired.bright_transfer(nets["decom"], y, camera=True)
        again = ld_unpaired.bright_transfer(nets["decom"], y, camera=True)
    assert plain.shape == cam.shape == y.shape and 0 <= cam.min() and cam.max() <= 1
    assert torch.equal(cam, again) and not torch.allclose(cam, plain)
