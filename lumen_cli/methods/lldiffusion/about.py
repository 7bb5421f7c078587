"""What ``lumen methods`` says about lldiffusion's presets (plain data: no torch import)."""

ABOUT = {
    "presets": "lite (shipped, trained by lumen), lite-plain (lite without the tone prior, "
    "for the ablation; not shipped), paper (LOL) and paper-v2 (LOL-v2): the "
    "authors' architectures, 52.8 M / 209 M at inference; paper weights only by converting",
    "bundled": "lldiffusion-lite: degradation encoder, denoising U-Net and training-only "
    "generator at 1/4 resolution (2.59 M at inference), trained here on SICE pairs (the "
    "tone stage also on synthetic ones); the U-Net normalises per pixel and fuses the "
    "features by concatenation, so tiles agree with the whole image",
    "lumen adds": "lite only: the global tone prior as the residual base of the diffusion, "
    "4 DDIM steps, shadow finish; on sice/val the tone prior plus finish alone give nearly "
    "all of its score, and the same nets trained by the same recipe without the prior "
    "(preset lite-plain, recipes/lldiffusion-lite-plain.toml) give blurred, washed-out "
    "pictures: 15.7 dB / 0.395 SSIM against 22.5 / 0.806 (medians of 10 sice/val pairs, "
    "BENCHMARKS.md, Ablation); its U-Net moves T(x) by 1.3 levels of 255",
    "paper weights": "download best-*.pth from the authors' README (github.com/TaoWangzj/"
    "LLDiffusion, Baidu), `lumen weights convert lldiffusion best-XXX.pth -o "
    "lldiffusion-paper.safetensors`, pass --weights (25 steps, whole image; the official "
    "patch mode through the Python API, about 64x the cost)",
}
