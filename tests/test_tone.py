"""The global tone prior (lumen_cli.nets.tone, lumen_cli.pipelines.tone) and its use by the
Retinex methods, plus fine-tuning with ``--init``."""

from __future__ import annotations

import math

import torch

from lumen_cli.nets.tone import ToneCurveNet, apply_curves, hold_shadow_balance
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


def test_match_luma_reaches_each_images_target_and_keeps_hue():
    from lumen_cli.retinex.classical import luma

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
    a, _ = T.tone_loss(nets, {"low": low, "high": ref}, 0, target_luma=0.4, crop=32)
    b, _ = T.tone_loss(nets, {"low": low, "high": darker}, 0, target_luma=0.4, crop=32)
    c, _ = T.tone_loss(nets, {"low": low, "high": darker}, 0, crop=32)
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
    from lumen_cli.pipelines.kind import KinDPipeline, restore_input

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


def test_gaussian_blur_keeps_constants_and_mass():
    from lumen_cli.pipelines.base import gaussian_blur

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
    from lumen_cli.retinex.classical import estimate_noise

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
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.kind import KinDPipeline
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
    # kind-lite at inference: the restoration net's global shift does not reach the output
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.kind import KinDPipeline

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


def test_highlight_rolloff_holds_highlights_keeps_hue_and_leaves_the_default_alone():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 16, 16, generator=g)
    assert torch.equal(T.highlight_rolloff(x, None), x)  # default rendering untouched
    assert torch.equal(T.highlight_rolloff(x * 0.7, 0.7), x * 0.7)  # darker: nothing to hold
    e = 2.0
    y = T.highlight_rolloff(x * e, e)
    m_in, m_out = (x * e).amax(1), y.amax(1)
    below = m_in <= 1 / e
    assert torch.equal(y.amax(1)[below], m_in[below])  # identity up to the knee 1/e
    assert float(m_out.max()) <= 1.0 + 1e-6 and float(m_out.max()) > 0.95  # e lands near 1
    # hue kept: every channel scaled alike
    torch.testing.assert_close(y / m_out.unsqueeze(1), x / x.amax(1, keepdim=True))
    # monotonic and continuous (slope 1 at the knee) in the max-RGB
    m = torch.linspace(0, e, 401).view(1, 1, -1, 1).expand(1, 3, -1, 1).contiguous()
    f = T.highlight_rolloff(m, e)[0, 0, :, 0]
    d = torch.diff(f)
    assert bool((d >= 0).all()) and float(d.max()) <= float(torch.diff(m[0, 0, :, 0]).max()) + 1e-6
    assert abs(float(f[-1]) - 1.0) < 1e-6
    assert float(T.highlight_rolloff(torch.full((1, 3, 1, 1), 3.0), e).max()) == 1.0


def test_shadow_floor_lifts_black_by_b_and_leaves_brighter_values():
    from lumen_cli.pipelines.tone import shadow_floor

    x = torch.tensor([0.0, 4 / 255, 0.5, 1.0]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    y = shadow_floor(x, b=4 / 255, tau=4 / 255)
    assert torch.allclose(y[..., 0], torch.full((1, 3, 1), 4 / 255))
    assert torch.allclose(y[..., 1], torch.full((1, 3, 1), 4 / 255 + 4 / 255 * math.exp(-1)))
    assert torch.allclose(y[..., 2:], x[..., 2:], atol=1e-6)
    assert torch.equal(shadow_floor(x, b=0), x)


def test_window_dct_is_the_dct_of_every_window_and_window_idct_its_adjoint():
    n = 4
    m = T.dct_matrix(n)
    assert torch.allclose(m @ m.T, torch.eye(n), atol=1e-6)  # orthonormal
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 1, 9, 11, generator=g)
    coef = T.window_dct(y, m)
    assert coef.shape == (1, n * n, 6, 8)
    for i, j in [(0, 0), (2, 5), (5, 7)]:
        d = m @ y[0, 0, i : i + n, j : j + n] @ m.T  # d[v, u]: vertical v, horizontal u
        assert torch.allclose(coef[0, :, i, j], d.T.reshape(-1), atol=1e-5)
    z = torch.randn(coef.shape, generator=g)
    assert torch.allclose((coef * z).sum(), (y * T.window_idct(z, m)).sum(), rtol=1e-4)


def test_dct_deblock_removes_amplified_block_steps_only_where_the_gain_is_high():
    g = torch.Generator().manual_seed(0)
    levels = 0.45 + 0.1 * torch.rand(1, 1, 4, 12, generator=g)
    out = levels.repeat_interleave(8, 2).repeat_interleave(8, 3).expand(1, 3, 32, 96).clone()
    x_in = out.clone()
    x_in[..., :48] = out[..., :48] / 30  # left half: the output is the input amplified 30x
    y = T.dct_deblock(x_in, out)

    def steps(t, c0, c1):  # mean |horizontal step| across the block edges of columns c0..c1
        d = (t[..., 4:-4, 1:] - t[..., 4:-4, :-1]).abs()
        return d[..., [c - 1 for c in range(c0, c1, 8)]].mean()

    assert steps(y, 8, 33) < 0.5 * steps(out, 8, 33)  # flattened where the gain was ~30
    # at gain ~1, past the reach (15 px windows + the gain blur): a fifth of an 8-bit level on
    # average; the threshold (1.75 levels) softens only the faintest block edges, by < 3 levels
    kept = (y - out)[..., 4:-4, 48 + 28 :].abs()
    assert kept.mean() < 0.25 / 255 and kept.max() < 3 / 255
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(T.dct_deblock(flat / 20, flat), flat, atol=1e-6)  # a flat image stays
    assert torch.equal(T.dct_deblock(x_in, out, k=0, kc=0), out)
    tiny = torch.rand(1, 3, 5, 6, generator=g)  # smaller than a window: replicate padding
    assert T.dct_deblock(tiny / 10, tiny).shape == tiny.shape


def test_dct_deblock_strips_do_not_change_the_result(monkeypatch):
    g = torch.Generator().manual_seed(1)
    out = torch.rand(2, 3, 45, 37, generator=g)
    x_in = out / (1 + 20 * torch.rand(2, 1, 45, 37, generator=g))
    monkeypatch.setattr(T, "DEBLOCK_STRIP", 1000)  # one strip: every window at once
    whole = T.dct_deblock(x_in, out)
    for strip in (1, 5, 32):  # strip edges inside, at and past the image's rows
        monkeypatch.setattr(T, "DEBLOCK_STRIP", strip)
        assert torch.allclose(T.dct_deblock(x_in, out), whole, atol=1e-6)
    assert (whole - out).abs().max() > 1 / 255  # the case is not trivial: it did change


def test_dct_deblock_passes_gradients_to_the_output():
    g = torch.Generator().manual_seed(2)
    out = torch.rand(1, 3, 20, 24, generator=g).requires_grad_()
    T.dct_deblock(out.detach() / 10, out).sum().backward()
    assert out.grad is not None and torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0


def test_dct_deblock_thresholds_chroma_apart_from_luma():
    from lumen_cli.pipelines.base import rgb_to_ycbcr, ycbcr_to_rgb

    g = torch.Generator().manual_seed(3)
    ycc = torch.zeros(1, 3, 32, 32)
    ycc[:, 0] = 0.5  # flat luma; Cb and Cr in 8x8 tiles with steps between them
    ycc[:, 1:] = (
        (0.04 * torch.rand(1, 2, 4, 4, generator=g)).repeat_interleave(8, 2).repeat_interleave(8, 3)
    )
    out = ycbcr_to_rgb(ycc).clamp(0, 1)
    x_in = out / 30  # brightened 30x
    chroma = rgb_to_ycbcr(out)[:, 1:]

    def steps(t):  # mean |horizontal chroma step| across the block edges
        d = rgb_to_ycbcr(t)[:, 1:, 4:-4]
        return (d[..., 1:] - d[..., :-1]).abs()[..., [7, 15, 23]].mean()

    luma_only = T.dct_deblock(x_in, out, kc=0)
    assert torch.allclose(rgb_to_ycbcr(luma_only)[:, 1:], chroma, atol=1e-5)  # chroma untouched
    assert steps(T.dct_deblock(x_in, out)) < 0.5 * steps(out)  # the chroma threshold flattens
