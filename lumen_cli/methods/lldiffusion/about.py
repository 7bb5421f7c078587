"""What ``lumen methods`` says about lldiffusion's presets (plain data: no torch import)."""

ABOUT = {
    "presets": "lite (shipped, trained by lumen), paper (LOL) and paper-v2 (LOL-v2): the "
    "authors' architectures, 52.8 M / 209 M at inference; paper weights only by converting",
    "bundled": "lldiffusion-lite: degradation encoder, denoising U-Net and training-only "
    "generator at 1/4 resolution (2.61 M at inference), trained here on SICE with "
    "synthetic sensor noise",
    "lumen adds": "lite only: the global tone prior as the residual base of the diffusion, "
    "4 DDIM steps, shadow finish; on sice/val the tone prior plus finish alone give nearly "
    "all of its score (benchmarks/NOTES.md; ablation in BENCHMARKS.md)",
    "paper weights": "download best-*.pth from the authors' README (github.com/TaoWangzj/"
    "LLDiffusion, Baidu), `lumen weights convert lldiffusion best-XXX.pth -o "
    "lldiffusion-paper.safetensors`, pass --weights (25 steps, whole image; the official "
    "patch mode through the Python API, about 64x the cost)",
}
