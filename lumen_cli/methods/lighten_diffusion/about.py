"""What ``lumen methods`` says about lighten-diffusion's presets (plain data: no torch
import)."""

ABOUT = {
    "presets": "paper (the authors' architecture, 27.8 M; weights by converting theirs), "
    "lite (1.67 M: CTDN width 16 with residual heads around a smoothed max-RGB "
    "decomposition, half-width U-Net predicting x0 instead of eps; trainable from unpaired "
    "photos with `lumen train --recipe recipes/lighten-diffusion-lite.toml`)",
    "bundled": "lighten-diffusion-lite, trained from unpaired sice frames only (no reference "
    "paired with its input, with random colour variations so that it keeps saturated hues, and "
    "a decoder trained on sensor-noisy, JPEG-compressed dark copies; stage 2 relights to the "
    "mean latent of sice/train's references, read without their low frames): "
    "20.61 dB / 0.746 SSIM mean (0.756 median) on sice/val at 20 steps, level with the "
    "classical retinex method's mean SSIM (BENCHMARKS.md). The "
    "diffusion samples the whole image's latent once (a downscaled copy above 0.59 MP), so "
    "tiles agree",
    "lumen adds": "stage-1 training (encoder/decoder + CTDN), which the authors' code lacks "
    "(losses in methods/lighten_diffusion/train.py); in lite, bright skips: the decoder's skips "
    "come from the input brightened by the gain the sampled latent implies, the output's "
    "chroma is smoothed (sigma 3 px, the tone prior's), and an 8-bit input's luma is first "
    "dequantised (the smoothest luma within half a code, colour ratios kept), so the bright "
    "skips do not turn a dark JPEG's flat 8x8 blocks into black holes; BENCHMARKS.md "
    "ablation-ld measures the preset with and without each",
    "paper weights": "download stage2_weight.pth.tar from the authors' README "
    "(github.com/JianghaiSCU/LightenDiffusion), `lumen weights convert lighten-diffusion "
    "stage2_weight.pth.tar -o lighten-diffusion-paper.safetensors`, pass --weights",
}
