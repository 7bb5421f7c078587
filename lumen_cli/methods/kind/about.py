"""What ``lumen methods`` says about kind's presets (plain data: no torch import)."""

ABOUT = {
    "presets": "lite (shipped, trained by lumen), paper (KinD, the authors' architecture, 8.0 M), "
    "paper-plus (KinD++ with its MSIA restoration net, 8.3 M), port (fenghansen/KinD-pytorch's "
    "nets); paper weights only by converting the authors'",
    "bundled": "kind-lite: narrower decomposition and restoration nets with residual heads, "
    "a light-ratio estimator and a tone net (2.2 M), trained here on SICE",
    "lumen adds": "lite only: the tone prior as the restoration input, the ratio estimated from "
    "the image, shadow finish and highlight roll-off; paper runs the authors' evaluate.py "
    "unchanged (min-max stretch, ratio 5, gray-gain fusion, blend with the input, uint8 "
    "truncation)",
    "measured": "lite with its restoration/adjustment nets bypassed (tone base + finish) "
    "differs by 2.6 of 255 per pixel and scores 0.24 dB lower but 0.004 SSIM higher on "
    "sice/val (BENCHMARKS.md, Ablation: the nets trade SSIM for PSNR); without the tone "
    "prior, kind-lite's first version (its own nets only, 4000 steps) scored 20.67 dB / "
    "0.707 against 23.0 / 0.80 with it (benchmarks/NOTES.md; not re-trained at today's length)",
    "paper weights": "git clone github.com/zhangyhuaee/KinD (decomposition and adjustment "
    "nets; no licence stated), `lumen weights convert kind KinD/checkpoint -o "
    "kind-official.safetensors`, pass --weights; decompose works as is, enhance also needs "
    "the restoration checkpoint linked from the authors' README",
}
