"""What ``lumen methods`` says about diff-retinex's presets (plain data: no torch import)."""

ABOUT = {
    "presets": "lite (shipped, trained by lumen), paper (the authors' architecture, 58.9 M; "
    "weights only by converting theirs)",
    "bundled": "diff-retinex-lite: compact TDN + RDA + IDA (5.4 M) trained here on SICE by "
    "recipes/diff-retinex-lite.toml",
    "lumen adds": "lite only: a global tone prior as the RDA's base (its picture comes mostly "
    "from it), the IDA at low resolution as a gain on L, x0 prediction, eta-0 DDIM "
    "(5 steps by default, the official test's count), shadow finish and highlight "
    "roll-off; paper runs the authors' test recipe unchanged (5 DDIM steps, eta 1, the "
    "refiner on every x0; --seed repeats it)",
    "measured": "lite with its RDA/IDA bypassed (tone base + finish) scores the same on "
    "sice/val (+0.01 dB) and differs by 0.7 of 255 per pixel; --steps and --seed move it by "
    "0.55-0.63: "
    "more steps do not help (BENCHMARKS.md, Ablation); without the tone prior, the first "
    "diff-retinex-lite (TDN 800 + IDA 2000 + RDA 2500 steps) scored 20.16 dB / 0.663 against "
    "22.9 / 0.80 with it (benchmarks/NOTES.md; not re-trained at today's length)",
    "paper weights": "download TDN, Diff-RDA and Diff-IDA from the authors' README "
    "(github.com/XunpengYi/Diff-Retinex, research use only), then `lumen weights convert "
    "diff-retinex model/ -o diff-retinex-paper.safetensors` and pass --weights",
}
