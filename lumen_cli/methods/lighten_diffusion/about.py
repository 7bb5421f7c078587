"""What ``lumen methods`` says about lighten-diffusion's presets (plain data: no torch
import)."""

ABOUT = {
    "presets": "paper (the authors' architecture, 27.8 M; weights by converting theirs), "
    "lite (1.67 M: CTDN width 16 with residual heads around a smoothed max-RGB "
    "decomposition, half-width U-Net predicting x0 instead of eps; trainable from unpaired "
    "photos with `lumen train --recipe recipes/lighten-diffusion-lite.toml`)",
    "bundled": "none yet: a lite file built by the recipe scores 18.11 dB / 0.653 SSIM on "
    "sice/val at 20 steps (BENCHMARKS.md; classical retinex 18.76 / 0.747), but its U-Net "
    "sets the brightness from each tile's own statistics, so tiled large photos show seams, "
    "and it shifts saturated hues; benchmarks/NOTES.md. Run one with --weights",
    "lumen adds": "stage-1 training (encoder/decoder + CTDN), which the authors' code lacks; "
    "losses in methods/lighten_diffusion/train.py",
    "paper weights": "download stage2_weight.pth.tar from the authors' README "
    "(github.com/JianghaiSCU/LightenDiffusion), `lumen weights convert lighten-diffusion "
    "stage2_weight.pth.tar -o lighten-diffusion-paper.safetensors`, pass --weights",
}
