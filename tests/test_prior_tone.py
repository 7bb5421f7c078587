"""The global tone prior (lumen_cli.nets.tone, lumen_cli.pipelines.tone) and its use by the
Retinex methods, plus fine-tuning with ``--init``."""

from __future__ import annotations

import torch

from lumen_cli.nets.tone import ToneCurveNet, apply_curves, hold_shadow_balance
from lumen_cli.prior import tone as T
from lumen_cli.train import tone_stage as TS


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


def test_shadow_balance_holds_the_channel_ratios_of_its_knot():
    k, K = 3, 12
    c = torch.rand(2, 3, K + 1).mul(0.5).add(0.05).cumsum(-1)
    c = torch.cat([torch.zeros(2, 3, 1), c[..., 1:]], -1) / c[..., -1:]
    h = hold_shadow_balance(c, k)
    assert torch.equal(h[..., k:], c[..., k:])  # mid-tones and highlights untouched
    assert torch.all(h[..., 0] == 0) and torch.all(h[..., 1:] > h[..., :-1])
    ratio = c[..., k] / c[..., k].mean(1, keepdim=True)
    for i in range(1, k):  # below the knot: the mean curve, coloured like knot k
        assert torch.allclose(h[..., i] / h[..., i].mean(1, keepdim=True), ratio, atol=1e-5)
        assert torch.allclose(h[..., i].mean(1), c[..., i].mean(1), atol=1e-6)
    assert torch.equal(hold_shadow_balance(c, 0), c)
    # the net applies it: a dark, neutral input pixel keeps a colour ratio shared with knot k
    torch.manual_seed(0)
    net = ToneCurveNet(width=8, knots=K, size=32, shadow_knots=k)
    out = net(torch.rand(1, 3, 40, 40))
    r = out[..., 1 : k + 1] / out[..., 1 : k + 1].mean(1, keepdim=True)
    assert torch.allclose(r, r[..., -1:].expand_as(r), atol=1e-5)


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
    low = torch.rand(8, 3, 4, 4)  # smooth colours: the chroma noise reduction keeps them
    low = torch.nn.functional.interpolate(low, size=(32, 32), mode="bilinear") * 0.25
    batch = {"low": low, "high": low**0.45}
    nets["tone"].eval()
    before, _ = TS.tone_loss(nets, batch, 0)
    nets["tone"].train()
    for step in range(150):
        loss, logs = TS.tone_loss(nets, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    nets["tone"].eval()
    after, logs = TS.tone_loss(nets, batch, 0)
    assert float(after.detach()) < 0.5 * float(before.detach())
    assert logs["l1"] < 0.05


def test_match_luma_reaches_each_images_target_and_keeps_hue():
    from lumen_cli.ops.color import luma

    torch.manual_seed(0)
    x = torch.rand(3, 3, 16, 16) * torch.tensor([0.1, 0.3, 0.6]).view(3, 1, 1, 1)
    want = torch.tensor([0.2, 0.45, 0.3])
    out = T.match_luma(x, want)
    got = luma(out).mean((1, 2, 3))
    assert torch.allclose(got, want, atol=2e-3)
    # one gain per image in linear light: channel ratios (linear) are unchanged where unclipped
    lin_in, lin_out = x**2.2, out**2.2
    ok = (out < 0.99).all(1, keepdim=True) & (x > 0.05).all(1, keepdim=True)
    r_in = (lin_in[:, 0:1] / lin_in[:, 1:2])[ok]
    r_out = (lin_out[:, 0:1] / lin_out[:, 1:2])[ok]
    assert torch.allclose(r_in, r_out, rtol=1e-3)
    # a scalar target applies to all images; an image already there stays (almost) as it is
    same = T.match_luma(out[1:2], 0.45)
    assert torch.allclose(same, out[1:2], atol=5e-3)


def test_tone_loss_target_luma_takes_brightness_out_of_the_target():
    """With target_luma, references that differ only in brightness give one target."""
    torch.manual_seed(0)
    nets = {"tone": ToneCurveNet(width=8, knots=12, size=32).eval()}
    low = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4), size=(32, 32)) * 0.2
    ref = low**0.45
    darker = ((ref**2.2) * 0.5) ** (1 / 2.2)
    a, _ = TS.tone_loss(nets, {"low": low, "high": ref}, 0, target_luma=0.4, crop=32)
    b, _ = TS.tone_loss(nets, {"low": low, "high": darker}, 0, target_luma=0.4, crop=32)
    c, _ = TS.tone_loss(nets, {"low": low, "high": darker}, 0, crop=32)
    a, b, c = (float(t.detach()) for t in (a, b, c))
    assert abs(a - b) < 1e-3
    assert abs(b - c) > 1e-2


def test_tone_reflectance_under_illumination_reconstructs_the_toned_image():
    x_t = torch.rand(1, 3, 8, 8) * 0.5
    l_hat = torch.full((1, 1, 8, 8), 0.6)
    r = T.tone_reflectance(x_t, l_hat)
    assert torch.allclose(r * l_hat, x_t, atol=1e-6)
    bright = T.tone_reflectance(torch.ones(1, 3, 2, 2), torch.full((1, 1, 2, 2), 0.5))
    assert float(bright.max()) <= 1


def test_kind_with_tone_restores_from_the_toned_reflectance():
    from lumen_cli.methods.kind.pipeline import KinDPipeline, restore_input

    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16) * 0.3
    r = torch.rand(1, 3, 16, 16)
    l_hat = torch.full((1, 1, 16, 16), 0.7)
    r_in, l_out = restore_input(x, r, l_hat, None)
    assert r_in is r and l_out is l_hat  # the paper: the decomposition's R and L^
    c = _identity_curves(1, 12) ** 0.5  # a brightening curve
    r_in, l_out = restore_input(x, r, l_hat, c)
    x_t = T.toned(x, c)
    assert (x_t - T.smooth_chroma(apply_curves(x, c), T.CHROMA_SIGMA)).abs().max() < 1e-6
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
    from lumen_cli.methods.kind.pipeline import KinDPipeline
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


def test_gaussian_blur_keeps_constants_and_mass():
    from lumen_cli.ops.filters import gaussian_blur

    x = torch.full((2, 3, 20, 24), 0.3)
    assert torch.allclose(gaussian_blur(x, 2.0), x, atol=1e-6)
    d = torch.zeros(1, 1, 41, 41)
    d[0, 0, 20, 20] = 1.0
    y = gaussian_blur(d, 2.0)
    assert abs(float(y.sum()) - 1.0) < 1e-5 and float(y.max()) < 0.05  # spread, not lost
    assert torch.allclose(y[0, 0], y[0, 0].T, atol=1e-7)  # separable and symmetric
    assert gaussian_blur(torch.rand(1, 2, 3, 3), 5.0).shape == (1, 2, 3, 3)  # tiny input


def test_smooth_chroma_reduces_colour_noise_and_keeps_luma():
    torch.manual_seed(0)
    grey = torch.rand(1, 1, 40, 40).expand(1, 3, 40, 40)
    assert torch.allclose(T.smooth_chroma(grey, 3.0), grey, atol=1e-5)  # no chroma, no change
    x = (0.5 + 0.1 * torch.randn(1, 3, 40, 40)).clamp(0, 1)
    y = T.smooth_chroma(x, 3.0)
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((y * w).sum(1), (x * w).sum(1), atol=1e-4)  # luma untouched
    assert float((y - (y * w).sum(1, keepdim=True)).std()) < 0.3 * float(
        (x - (x * w).sum(1, keepdim=True)).std()
    )
    assert T.smooth_chroma(x, 0).equal(x)


def test_denoise_luma_follows_the_measured_noise_and_keeps_edges_and_hue():
    from lumen_cli.ops.filters import estimate_noise

    g = torch.Generator().manual_seed(0)
    clean = torch.full((1, 3, 64, 64), 0.3)
    clean[..., 32:, :] = 0.7  # a step edge between rows 31 and 32
    clean[:, 0] += 0.1  # a reddish hue
    x = (clean + 0.03 * torch.randn(1, 1, 64, 64, generator=g)).clamp(0, 1)
    assert T.denoise_luma(x, 0.0).equal(x)  # no measured noise: untouched
    sigma = estimate_noise(x)
    y = T.denoise_luma(x, sigma)
    err_in = float((x - clean)[..., 4:28, :].std())
    assert float((y - clean)[..., 4:28, :].std()) < 0.5 * err_in  # the flat part is cleaner
    edge = (y[..., 34:40, :] - y[..., 24:30, :]).mean()
    assert abs(float(edge) - 0.4) < 0.05  # the step keeps its height
    assert torch.allclose((y - x)[:, 0], (y - x)[:, 1], atol=1e-6)  # one change for R, G, B
    # per image in a batch: a clean image next to a noisy one stays as it was
    both = T.denoise_luma(torch.cat([clean, x]), torch.tensor([0.0, sigma]))
    assert both[0].equal(clean[0]) and torch.allclose(both[1], y[0], atol=1e-6)


def test_tone_noise_is_one_whole_image_number_so_tiles_agree():
    from lumen_cli.methods.kind.pipeline import KinDPipeline
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image

    torch.manual_seed(0)
    c = _identity_curves(1, 12) ** 0.5
    g = torch.Generator().manual_seed(1)
    x = (0.1 + 0.02 * torch.randn(1, 3, 96, 80, generator=g)).clamp(0, 1)
    n = T.tone_noise(x, c)
    assert n.shape == (1,) and float(n) > 0
    assert float(T.tone_noise(x * 0 + 0.1, c)) < 1e-6
    assert float(T.tone_noise(x, c, crop=32)) > 0  # measured on the centre crop
    # the pipeline measures it once in analyze: tiled and whole-image results agree
    pipe = KinDPipeline(KinDPipeline.build_nets("lite"))
    ctx = pipe.analyze(x, EnhanceOptions(), torch.Generator())
    assert torch.allclose(ctx["tone_noise"], T.tone_noise(x, ctx["curves"]))
    whole = enhance_image(pipe, x, tile=None, precision="fp32")
    tiled = enhance_image(pipe, x, tile=48, overlap=16, precision="fp32")
    assert (whole - tiled).abs().max() < 2e-3


def test_anchor_detail_keeps_the_tone_priors_low_frequencies():
    torch.manual_seed(0)
    r_in = torch.rand(1, 3, 48, 48) * 0.5 + 0.25
    assert T.anchor_detail(r_in + 0.1, r_in, 0.0).equal(r_in + 0.1)  # off
    # a global shift (brightness / colour) of the net is removed...
    assert torch.allclose(T.anchor_detail(r_in - 0.1, r_in, 2.0), r_in, atol=1e-5)
    # ...while pixel-scale changes (noise removal, detail) pass through almost untouched
    checker = ((torch.arange(48)[:, None] + torch.arange(48)[None]) % 2).float() * 0.1 - 0.05
    out = T.anchor_detail(r_in + checker, r_in, 2.0)
    assert (out - r_in - checker).abs()[..., 8:-8, 8:-8].max() < 0.01
    # clamped to [0,1] at inference; unclamped (training) an overshoot keeps its gradient
    big = r_in + 10 * checker
    assert float(T.anchor_detail(big, r_in, 2.0).max()) <= 1.0
    assert float(T.anchor_detail(big, r_in, 2.0, clamp=False).max()) > 1.0
    # kind-lite at inference: the restoration net's global shift does not reach the output
    from lumen_cli.methods.kind.pipeline import KinDPipeline
    from lumen_cli.pipelines.base import EnhanceOptions

    nets = KinDPipeline.build_nets("lite")
    pipe = KinDPipeline(nets)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4), size=(32, 32), mode="bilinear")
    x = x * 0.3
    ctx = pipe.analyze(x, EnhanceOptions(), torch.Generator())
    base = pipe._maps(x, ctx, EnhanceOptions())
    orig = nets["restore"].forward
    nets["restore"].forward = lambda r, l: orig(r, l) - 0.15  # a darkening net
    m = pipe._maps(x, ctx, EnhanceOptions())
    off = pipe._maps(x, ctx, EnhanceOptions(extra={"anchor": 0}))
    assert (m["r_hat"] - base["r_hat"]).abs().mean() < 0.02
    assert (off["r_hat"] - base["r_hat"]).abs().mean() > 0.1


def _bracket(path, name: str, scene: torch.Tensor, gain: float) -> None:
    from PIL import Image

    img = ((scene**2.2 * gain).clamp(0, 1) ** (1 / 2.2) * 255).round().byte()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(path / name)


def test_bracket_pairs_take_the_best_exposed_frame_as_target(tmp_path):
    from lumen_cli.train.brackets import make_pairs, rank_corr

    a = torch.rand(64)
    assert abs(rank_corr(a.numpy(), (a * 3 + 1).numpy()) - 1) < 1e-9
    assert abs(rank_corr(a.numpy(), (-a).numpy()) + 1) < 1e-9
    torch.manual_seed(0)
    src, val = tmp_path / "frames", tmp_path / "val"
    src.mkdir()
    val.mkdir()
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8), size=(64, 64), mode="bilinear")
    scene = smooth[0] * 0.8 + 0.1
    for i, gain in enumerate([0.01, 0.05, 0.3, 1.0, 4.0]):  # scene s1: a bracket
        _bracket(src, f"s1_{i:04d}.png", scene, gain)
    _bracket(src, "s2_0000.png", scene, 1.0)  # s2: a well-exposed frame...
    other = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8), size=(64, 64), mode="bilinear")
    _bracket(src, "s2_0001.png", other[0] * 0.8 + 0.1, 0.02)  # ...and a dark different view
    _bracket(src, "s3_0000.png", scene, 0.02)  # s3: in the validation set
    _bracket(src, "s3_0001.png", scene, 1.0)
    _bracket(val, "s3_0009.png", scene, 1.0)
    res = make_pairs([src], tmp_path / "pairs", exclude=[val])
    assert res == {"scenes": 1, "pairs": 2, "excluded_scenes": 1}
    lows = sorted(p.name for p in (tmp_path / "pairs" / "low").iterdir())
    assert lows == ["s1_0000.png", "s1_0001.png"]  # 0.3 is too bright for a low input
    for name in lows:  # every low input is paired with the frame nearest mean luma 0.45
        assert (tmp_path / "pairs" / "high" / name).resolve() == (src / "s1_0003.png").resolve()
    from lumen_cli.train.data import paired_files

    assert len(paired_files(tmp_path / "pairs")) == 2
    rows = (tmp_path / "pairs" / "pairs.csv").read_text().splitlines()
    assert rows[0].startswith("name,src_low,src_high") and len(rows) == 3
    # the same through the CLI, copying instead of linking
    from typer.testing import CliRunner

    from lumen_cli.cli.app import app

    out = tmp_path / "cli"
    r = CliRunner().invoke(
        app, ["train", "pairs", str(src), "-o", str(out), "--exclude", str(val), "--copy"]
    )
    assert r.exit_code == 0, r.output
    assert "2 pairs from 1 scenes" in r.output
    assert not (out / "low" / "s1_0000.png").is_symlink()
    assert len(paired_files(out)) == 2


def test_fit_curves_recovers_the_curve_that_made_the_reference():
    from lumen_cli.nets.tone import fit_curves

    torch.manual_seed(2)
    k = 12
    x = torch.rand(2, 3, 24, 24)
    truth = torch.rand(2, 3, k).mul(0.3).add(0.02).cumsum(-1)
    truth = torch.cat([torch.zeros(2, 3, 1), truth / truth[..., -1:] * 0.9], -1)
    y = apply_curves(x, truth)
    fit = fit_curves(x, y, knots=k, smooth=1e-6)
    assert fit.shape == (2, 3, k + 1) and torch.all(fit[..., 0] == 0)
    assert torch.allclose(fit.float(), truth, atol=2e-3)
    assert torch.all(fit[..., 1:] >= fit[..., :-1])
    # a reference the curves cannot reach (a brighter copy, clipped) still gives valid curves
    fit = fit_curves(x, (y * 3).clamp(0, 1), knots=k)
    assert float(fit.min()) >= 0 and float(fit.max()) <= 1
