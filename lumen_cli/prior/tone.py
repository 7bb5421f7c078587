"""The global tone prior (lumen addition), shared by ``kind`` and ``diff-retinex`` (lite).

A per-image, per-channel tone curve T predicted from a thumbnail of the whole photo
(``lumen_cli.nets.tone.ToneCurveNet``) maps the dim input to a well exposed, well coloured
picture T(x); the methods' nets start from the reflectance that T(x) implies under their
illumination (``lift_illumination``, ``tone_reflectance``) and change only detail and noise
finer than a Gaussian of ``ANCHOR_SIGMA`` px (``anchor_detail``). T(x) has its chroma smoothed
(``smooth_chroma``) and its luma denoised in proportion to the noise measured on it
(``tone_noise``, ``denoise_luma``). Its training stage is ``lumen_cli.train.tone_stage``.

Images are (B,3,h,w) float in [0,1], sRGB; curves (B,3,K+1). Measurements: benchmarks/NOTES.md.
"""

from __future__ import annotations

import torch

from lumen_cli.nets.tone import apply_curves
from lumen_cli.ops.color import luma, rgb_to_ycbcr, ycbcr_to_rgb
from lumen_cli.ops.filters import estimate_noise, gaussian_blur, guided_filter
from lumen_cli.ops.resize import centre_crop

TONE_NET = ("tone.curves", {"width": 32, "knots": 24, "size": 64})
CHROMA_SIGMA = 3.0  # chroma noise reduction of T(x), see toned()
ANCHOR_SIGMA = 2.0  # see anchor_detail; opts.extra["anchor"] overrides it (0: off)
DENOISE_K = 2.5  # luma denoising strength in units of the measured noise, see denoise_luma
NOISE_CROP = 512  # tone_noise measures the noise on a centre crop of this size


def linear_gain(x: torch.Tensor, g: float | torch.Tensor) -> torch.Tensor:
    """sRGB x in [0,1] times the linear-light gain g (sRGB ~ gamma 2.2), clipped; float32."""
    return ((x.float().clamp(0, 1) ** 2.2) * g).clamp(0, 1) ** (1 / 2.2)


def match_luma(x: torch.Tensor, want: float | torch.Tensor, rounds: int = 10) -> torch.Tensor:
    """x (B,3,H,W) sRGB in [0,1] under the one linear-light gain per image (sRGB ~ gamma 2.2)
    that gives it the mean luma ``want`` (a float or (B,)); clipping makes it non-linear, so
    a few fixed-point rounds. Returns float32."""
    want = torch.as_tensor(want, dtype=torch.float32, device=x.device).reshape(-1, 1, 1, 1)
    g = torch.ones(x.shape[0], 1, 1, 1, device=x.device)
    for _ in range(rounds):
        g = g * want / luma(linear_gain(x, g)).mean((1, 2, 3), keepdim=True).clamp_min(1e-6)
    return linear_gain(x, g)


def curves_for(nets, x: torch.Tensor) -> torch.Tensor | None:
    """(B,3,K+1) tone curves of whole images x (B,3,H,W), or None without a ``tone`` net."""
    if "tone" not in nets:
        return None
    return nets["tone"](x).float()


def smooth_chroma(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur the chroma (BT.601 Cb, Cr) of (B,3,h,w) sRGB by a Gaussian of ``sigma`` px, luma
    untouched: chroma noise reduction as in camera pipelines (the eye reads detail from luma)."""
    if sigma <= 0:
        return x
    ycc = rgb_to_ycbcr(x)
    ycc = torch.cat([ycc[:, :1], gaussian_blur(ycc[:, 1:], sigma)], 1)
    return ycbcr_to_rgb(ycc).clamp(0, 1)


def toned(
    x: torch.Tensor,
    curves: torch.Tensor,
    chroma_sigma: float = CHROMA_SIGMA,
    noise: float | torch.Tensor = 0.0,
):
    """T(x): x (B,3,h,w) in [0,1] with whole-image curves (1 or B,3,K+1) -> (B,3,h,w), with
    its chroma smoothed (``smooth_chroma``): brightening a dim frame amplifies its colour noise,
    which the references (longer exposures) do not have (σ chosen on sice/train).

    ``noise``: the noise level of the curve-mapped image (``tone_noise``, a float or (B,)
    tensor, [0,1] units) for its luma denoising (``denoise_luma``); 0 leaves luma untouched."""
    out = apply_curves(x, curves.expand(x.shape[0], -1, -1)).clamp(0, 1)
    return denoise_luma(smooth_chroma(out, chroma_sigma), noise)


@torch.no_grad()
def tone_noise(x: torch.Tensor, curves: torch.Tensor, crop: int = NOISE_CROP) -> torch.Tensor:
    """(B,) noise σ of T(x) in [0,1] units, measured (``classical.estimate_noise``: MAD of a
    Laplacian-like high-pass) on a centre crop of at most ``crop`` px of the full-resolution
    images x (B,3,H,W), so it is one number per image, the same for every tile (a measurement:
    no gradient flows through it)."""
    c = centre_crop(x, crop).float()
    t = toned(c, curves.to(c.device).expand(c.shape[0], -1, -1))
    return torch.tensor([estimate_noise(t[i : i + 1]) for i in range(t.shape[0])])


def denoise_luma(x: torch.Tensor, noise: float | torch.Tensor, k: float = DENOISE_K):
    """Self-guided filter (radius 2, ε = (k·noise)²) on the luma of (B,3,h,w) sRGB x; the luma
    change is added to all three channels (hue kept). ``noise`` (float or (B,)) of 0: x.

    The restoration / diffusion nets, trained on mildly noisy SICE frames, leave most of a real
    night photo's luma grain in place. Strength follows the measured noise, as in the classical
    ``retinex`` method (k = 2.5 there and here, not tuned on validation data)."""
    noise = torch.as_tensor(noise, dtype=torch.float32, device=x.device).reshape(-1)
    if not bool((noise > 0).any()):
        return x
    eps = (k * noise.clamp_min(1e-4)).square().view(-1, 1, 1, 1)
    on = (noise > 0).view(-1, 1, 1, 1)
    return torch.where(on, guided_luma(x, 2, eps), x.float()).clamp(0, 1)


def guided_luma(x: torch.Tensor, r: int, eps) -> torch.Tensor:
    """x (B,3,h,w) with its luma self-guided filtered (radius r, ε scalar, (B,1,1,1) or a
    per-pixel map): the luma change is added to all three channels, so hue is kept. Unclamped."""
    y = luma(x.float())
    return x.float() + guided_filter(y, y, r=r, eps=eps) - y


def lift_illumination(l_hat: torch.Tensor, x_toned: torch.Tensor) -> torch.Tensor:
    """max(L^, max-RGB of T(I)), (B,1,h,w): the illumination under which the toned image has a
    reflectance in [0,1] (without it, T(I) / L^ clips wherever L^ is darker than T(I))."""
    return torch.maximum(l_hat.float(), x_toned.float().amax(1, keepdim=True))


def tone_reflectance(x_toned: torch.Tensor, l_hat: torch.Tensor, eps: float = 1e-3):
    """Reflectance implied by the toned image under the pipeline's illumination L^:
    clamp(T(I) / L^, 0, 1). x_toned (B,3,h,w), l_hat (B,1,h,w), both in [0,1]."""
    return (x_toned.float() / l_hat.float().clamp_min(eps)).clamp(0, 1)


def anchor_sigma(opts) -> float:
    """σ of ``anchor_detail`` for an enhance call: ``opts.extra["anchor"]``, else ANCHOR_SIGMA."""
    return float(opts.extra.get("anchor", ANCHOR_SIGMA))


def anchor_parts(r_hat: torch.Tensor, r_in: torch.Tensor, sigma: float):
    """(r_in + high-pass_σ(r_hat − r_in) unclamped, the discarded low-pass_σ(r_hat − r_in)),
    both (B,3,h,w) float32: ``anchor_detail`` before its clamp, and what it throws away."""
    d = r_hat.float() - r_in.float()
    low = gaussian_blur(d, sigma)
    return r_in.float() + d - low, low


def anchor_detail(
    r_hat: torch.Tensor, r_in: torch.Tensor, sigma: float, clamp: bool = True
) -> torch.Tensor:
    """Keep the tone prior's low frequencies: r_in + high-pass_σ(r_hat − r_in), (B,3,h,w),
    clamped to [0,1] unless ``clamp`` is false (training: a clamped pixel passes no gradient).

    The reflectance nets start from R_in = T(I) / L (an identity net returns T(I)); this lets
    them change only detail and noise finer than a Gaussian of ``sigma`` pixels, while the
    whole-image tone curves own brightness and colour. ``sigma`` <= 0 returns r_hat
    unchanged."""
    if sigma <= 0:
        return r_hat
    out, _ = anchor_parts(r_hat, r_in, sigma)
    return out.clamp(0, 1) if clamp else out


__all__ = [
    "ANCHOR_SIGMA",
    "TONE_NET",
    "anchor_detail",
    "anchor_parts",
    "anchor_sigma",
    "curves_for",
    "denoise_luma",
    "guided_luma",
    "lift_illumination",
    "linear_gain",
    "match_luma",
    "smooth_chroma",
    "tone_noise",
    "tone_reflectance",
    "toned",
]
