"""The global tone prior (lumen_cli.nets.tone, lumen_cli.pipelines.tone) and its use by the
Retinex methods, plus fine-tuning with ``--init``."""

from __future__ import annotations

import torch

from lumen_cli.nets.tone import ToneCurveNet, apply_curves
from lumen_cli.pipelines import tone as T


def _identity_curves(b: int, k: int) -> torch.Tensor:
    """Curves whose knots sit on y = x (knot i at value (i/K)^2)."""
    return ((torch.arange(k + 1) / k) ** 2).expand(b, 3, k + 1).clone()


def test_curves_are_monotone_from_zero_to_white_level():
    torch.manual_seed(0)
    net = ToneCurveNet(width=8, knots=12, size=32)
    c = net(torch.rand(3, 3, 40, 56))
    assert c.shape == (3, 3, 13)
    assert torch.all(c[..., 0] == 0)
    assert torch.all(c[..., 1:] > c[..., :-1])
    assert torch.all(c[..., -1] <= 1) and torch.all(c[..., -1] > 0)


def test_apply_curves_interpolates_exactly_between_knots():
    k = 8
    x = torch.rand(2, 3, 17, 9)
    # identity knots: linear interpolation of u^2 in u errs by at most 1 / (4 K^2)
    y = apply_curves(x, _identity_curves(2, k))
    assert (y - x).abs().max() <= 1 / (4 * k * k) + 1e-6
    # at the knots themselves the curve's values come back exactly
    knots = ((torch.arange(k + 1) / k) ** 2).view(1, 1, 1, -1).expand(1, 3, 1, k + 1)
    c = torch.rand(1, 3, k + 1).sort(-1).values
    assert torch.allclose(apply_curves(knots.contiguous(), c)[0, :, 0], c[0], atol=1e-6)
    # per channel: a curve on red only leaves green and blue alone
    c = _identity_curves(1, k)
    c[0, 0] = c[0, 0] * 0.5
    y = apply_curves(x[:1], c)
    assert torch.allclose(y[0, 1:], apply_curves(x[:1], _identity_curves(1, k))[0, 1:])
    assert y[0, 0].mean() < x[0, 0].mean() * 0.55


def test_apply_curves_is_pointwise_so_tiles_agree():
    torch.manual_seed(1)
    x = torch.rand(1, 3, 32, 48)
    c = ToneCurveNet(width=8, knots=10, size=32)(x)
    whole = apply_curves(x, c)
    left, right = apply_curves(x[..., :20], c), apply_curves(x[..., 20:], c)
    assert torch.equal(torch.cat([left, right], -1), whole)


def test_tone_stage_learns_a_gamma_curve():
    """A few hundred steps on generated pairs (high = low ** 0.45) bring the loss down."""
    torch.manual_seed(0)
    nets = {"tone": ToneCurveNet(width=8, knots=12, size=32)}
    opt = torch.optim.Adam(nets["tone"].parameters(), 3e-3)
    low = torch.rand(8, 3, 4, 4).repeat_interleave(8, -1).repeat_interleave(8, -2) * 0.25
    batch = {"low": low, "high": low**0.45}
    nets["tone"].eval()
    before, _ = T.tone_loss(nets, batch, 0)
    nets["tone"].train()
    for step in range(150):
        loss, logs = T.tone_loss(nets, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    nets["tone"].eval()
    after, logs = T.tone_loss(nets, batch, 0)
    assert float(after.detach()) < 0.5 * float(before.detach())
    assert logs["l1"] < 0.05


def test_tone_reflectance_under_illumination_reconstructs_the_toned_image():
    x_t = torch.rand(1, 3, 8, 8) * 0.5
    l_hat = torch.full((1, 1, 8, 8), 0.6)
    r = T.tone_reflectance(x_t, l_hat)
    assert torch.allclose(r * l_hat, x_t, atol=1e-6)
    bright = T.tone_reflectance(torch.ones(1, 3, 2, 2), torch.full((1, 1, 2, 2), 0.5))
    assert float(bright.max()) <= 1


def test_kind_with_tone_restores_from_the_toned_reflectance():
    from lumen_cli.pipelines.kind import KinDPipeline, restore_input

    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16) * 0.3
    r = torch.rand(1, 3, 16, 16)
    l_hat = torch.full((1, 1, 16, 16), 0.7)
    r_in, l_out = restore_input(x, r, l_hat, None)
    assert r_in is r and l_out is l_hat  # the paper: the decomposition's R and L^
    c = _identity_curves(1, 12) ** 0.5  # a brightening curve
    r_in, l_out = restore_input(x, r, l_hat, c)
    x_t = apply_curves(x, c)
    # L^ is lifted where the toned image is brighter, so R_in · L_out is T(x) exactly
    assert torch.allclose(l_out, torch.maximum(l_hat, x_t.amax(1, keepdim=True)))
    assert float(r_in.max()) <= 1 and torch.allclose(r_in * l_out, x_t, atol=1e-5)
    nets = KinDPipeline.build_nets("lite")
    assert "tone" in nets and "tone" not in KinDPipeline.build_nets("paper")
    pipe = KinDPipeline(nets)
    from lumen_cli.pipelines.base import EnhanceOptions

    ctx = pipe.analyze(torch.rand(1, 3, 32, 32), EnhanceOptions(), torch.Generator())
    assert ctx["curves"].shape == (1, 3, 25)


def test_init_fine_tunes_from_a_weights_file_and_export_keeps_those_nets(tmp_path):
    """--init loads matching nets; a later --stage may use nets the run never trained; the
    export carries the --init weights for them."""
    from lumen_cli.pipelines.kind import KinDPipeline
    from lumen_cli.train.export import export_run
    from lumen_cli.train.runner import train
    from lumen_cli.weights.checkpoint import load_nets, save_nets
    from tests.test_train import make_pairs

    torch.manual_seed(3)
    src = KinDPipeline.build_nets("lite")
    save_nets(tmp_path / "start.safetensors", "kind", src)
    data = make_pairs(tmp_path / "train", n=4, size=32)
    msgs: list[str] = []
    train(
        "kind", data, tmp_path / "run", stage="tone", threads=1, message=msgs.append,
        init=tmp_path / "start.safetensors", sets=["tone.steps=3", "tone.batch_size=2"],
    )  # fmt: skip
    assert any("--init: loaded" in m and "decom" in m for m in msgs)
    train(
        "kind", data, tmp_path / "run", stage="joint", threads=1, resume=True,
        sets=["joint.steps=2", "joint.batch_size=2", "joint.crop=32"],
    )  # fmt: skip
    res = export_run(tmp_path / "run", tmp_path / "out.safetensors")
    assert not any("never ran" in n for n in res["notes"])
    _, nets, _ = load_nets(tmp_path / "out.safetensors")
    for k, v in nets["decom"].state_dict().items():  # untouched by this run: the --init copy
        assert torch.equal(v, src["decom"].state_dict()[k]), k
    assert not all(
        torch.equal(v, src["restore"].state_dict()[k])
        for k, v in nets["restore"].state_dict().items()
    )  # the joint stage fine-tuned it
    assert res["provenance"]["init"].endswith("start.safetensors")
    assert len(res["provenance"]["init_sha256"]) == 64
