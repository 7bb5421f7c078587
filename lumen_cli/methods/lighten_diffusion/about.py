"""What ``lumen methods`` says about lighten-diffusion's presets (plain data: no torch
import)."""

ABOUT = {
    "presets": "paper (the authors' architecture, 27.8 M; weights by converting theirs), "
    "lite (1.67 M: CTDN width 16 with residual heads around a smoothed max-RGB "
    "decomposition, half-width U-Net; trainable from unpaired photos with `lumen train "
    "--recipe recipes/lighten-diffusion-lite.toml`)",
    "bundled": "none yet: the best lite run (68 min of CPU, 2026-12-06) scored 9.82 dB / "
    "0.325 SSIM on sice/val, no better than the input (9.65 / 0.29): its 20-step samples do "
    "not follow the trained target (benchmarks/NOTES.md); run with --weights",
    "lumen adds": "stage-1 training (encoder/decoder + CTDN), which the authors' code lacks; "
    "losses in methods/lighten_diffusion/train.py",
    "paper weights": "download stage2_weight.pth.tar from the authors' README "
    "(github.com/JianghaiSCU/LightenDiffusion), `lumen weights convert lighten-diffusion "
    "stage2_weight.pth.tar -o lighten-diffusion-paper.safetensors`, pass --weights",
}
