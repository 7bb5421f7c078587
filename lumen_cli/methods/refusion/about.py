"""What ``lumen methods`` says about refusion's presets (plain data: no torch import)."""

ABOUT = {
    "presets": "lite (shipped, experimental), paper (pixel, 76.6 M) and paper-latent "
    "(78.6 M): the authors' architectures; the authors released no low-light model",
    "bundled": "refusion-lite: latent auto-encoder + conditional NAFNet (2.08 M), trained "
    "here for only 850 steps: it scores 11.7 dB / 0.27 SSIM on sice/val, no better than the "
    "input; use it to try the pipeline, not for pictures",
    "lumen adds": "lite only: a latent scale (10) between the auto-encoder and the SDE; "
    "posterior sampler by default (--sampler sde|ode|posterior), 20 steps",
    "paper weights": "the authors' Refusion files (github.com/Algolzw/image-restoration-sde) "
    "are for other tasks (deshadowing, dehazing); `lumen weights convert refusion FILE.pth` "
    "(both latent files for paper-latent) loads them for parity or fine-tuning",
}
