"""What ``lumen methods`` says about lighten-diffusion's presets (plain data: no torch
import)."""

ABOUT = {
    "presets": "paper (the authors' architecture, 27.8 M; weights by converting theirs), "
    "lite (1.34 M, trainable from unpaired photos with `lumen train --recipe "
    "recipes/lighten-diffusion-lite.toml`)",
    "bundled": "none yet: the first lite run (35 min of CPU) scored 7.55 dB on sice/val, "
    "below the input, so it was not shipped; run with --weights",
    "lumen adds": "stage-1 training (encoder/decoder + CTDN), which the authors' code lacks; "
    "losses in methods/lighten_diffusion/train.py",
    "paper weights": "download stage2_weight.pth.tar from the authors' README "
    "(github.com/JianghaiSCU/LightenDiffusion), `lumen weights convert lighten-diffusion "
    "stage2_weight.pth.tar -o lighten-diffusion-paper.safetensors`, pass --weights",
}
