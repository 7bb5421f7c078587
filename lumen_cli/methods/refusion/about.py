"""What ``lumen methods`` says about refusion's presets (plain data: no torch import)."""

ABOUT = {
    "presets": "lite (shipped, trained by lumen), lite-input (its mu = x ablation, not "
    "shipped), lite-pixel / lite-pixel-input (the SDE on pixels behind a 2x2 unshuffle stem, "
    "recipes/refusion-lite-pixel.toml; trained and measured, no better than T(x) on unseen "
    "scenes, so not shipped: benchmarks/NOTES.md), paper (pixel, 76.6 M) and paper-latent "
    "(78.6 M): the authors' architectures; the authors released no low-light model",
    "bundled": "refusion-lite: tone prior (0.18 M) + IR-SDE noise net (width-16 NAFNet, "
    "1.24 M) on a fixed 1/8 block-mean latent, trained here on SICE (tone 600 + SDE 6000 "
    "steps, recipes/refusion-lite.toml): 22.61 dB / 0.7833 SSIM on sice/val at the default "
    "(posterior sampler, 5 steps; more steps score lower)",
    "lumen adds": "lite only: the SDE's mean is the latent of the tone prior's T(x), not of "
    "the input; the latent is the image's 8x8 block means (no learned auto-encoder) and the "
    "net predicts x0. The tone prior gives most of the score: T(x) alone scores 22.60 dB / "
    "0.7835 on sice/val, the same recipe without it (lite-input, mu = x, 6000 SDE steps) "
    "20.20 / 0.638. The SDE net moves T(x)'s local exposure and colour by 3.6 of 255 "
    "levels (median) and scores the same as T(x) on sice/val (+0.18 dB on sice/train), "
    "and the same recipe trained on half of sice/train's scenes adds +0.02 dB on the other "
    "half (trained on references at T(x)'s brightness, sde.loss_args.match_luma: 0.22 dB "
    "below T(x); on means of an out-of-fold tone net: 0.37 dB below; neither used) "
    "(benchmarks/NOTES.md, BENCHMARKS.md refusion section)",
    "paper weights": "the authors' Refusion files (github.com/Algolzw/image-restoration-sde) "
    "are for other tasks (deshadowing, dehazing); `lumen weights convert refusion FILE.pth` "
    "(both latent files for paper-latent) loads them for parity or fine-tuning",
}
