"""Validation during training.

Two numbers, both on the ``--val`` pairs:

- ``val_loss``: the stage's own loss on fixed center crops (every stage has one, so stages
  whose output is not an enhanced image, e.g. a decomposition, are measured too);
- ``psnr`` / ``ssim``: the whole pipeline run on whole val images through
  ``lumen_cli.pipelines.run.enhance_image`` (the code path of ``lumen enhance``), scored with
  ``lumen_cli.metrics`` — only when ``Stage.validate_full`` says the result is meaningful.

Both run with the EMA weights, without gradients, on a forked RNG seeded with 0 (so the
training's random stream is untouched and the numbers are comparable between validations).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lumen_cli import metrics
from lumen_cli.train.data import center_crops, load_cached, to_tensor
from lumen_cli.train.stage import Stage


def stage_val_loss(
    stage: Stage, nets: dict[str, nn.Module], batch: dict, step: int, amp, loss_args=None
) -> float:
    """Mean of the stage loss over the val batch, one image at a time (bounded memory)."""
    total, n = 0.0, batch["low"].shape[0]
    for i in range(n):
        one = {k: v[i : i + 1] for k, v in batch.items()}
        with torch.autocast(one["low"].device.type, dtype=amp, enabled=amp is not None):
            loss, _ = stage.loss(nets, one, step, **(loss_args or {}))
        total += float(loss.float())
    return total / max(1, n)


def full_pipeline_scores(
    pipeline_cls, nets: dict[str, nn.Module], pairs, device, steps: int | None, precision: str
) -> dict[str, float]:
    """Mean PSNR/SSIM of the whole method on whole images (the ``enhance`` code path)."""
    from lumen_cli.pipelines.base import EnhanceOptions
    from lumen_cli.pipelines.run import enhance_image

    pipe = pipeline_cls(dict(nets)).to(device)
    ps, ss = [], []
    for lo_p, hi_p in pairs:
        x = to_tensor(load_cached(lo_p))[None]  # the runner moves tiles to the device
        y = to_tensor(load_cached(hi_p))[None]
        out = enhance_image(pipe, x, EnhanceOptions(steps=steps, seed=0), precision=precision)
        out = out.detach().float().cpu().clamp(0, 1)
        ps.append(float(metrics.psnr(out, y)))
        ss.append(float(metrics.ssim(out, y)))
    return {"psnr": metrics.summarize(ps)["mean"], "ssim": sum(ss) / len(ss)}


def make_validator(
    pipeline_cls,
    stage: Stage,
    cfg: dict[str, Any],
    all_nets: dict[str, nn.Module],
    val_pairs,
    device,
    amp,
):
    """-> validate(ema_nets, step) -> {"val_loss": ..., ["psnr", "ssim"]}."""
    pairs = list(val_pairs)[: int(cfg["val_limit"])]
    crop = cfg.get("val_crop")
    batch = center_crops(pairs, crop, limit=len(pairs)) if stage.data == "paired" else None
    if stage.data == "unpaired":
        lows = center_crops(pairs, crop, limit=len(pairs))["low"]
        batch = {"low": lows, "normal": center_crops(pairs, crop, limit=len(pairs))["high"]}
    batch = {k: v.to(device) for k, v in batch.items()}
    full_ok = stage.validate_full and _have_runner()

    def validate(ema_nets: dict[str, nn.Module], step: int) -> dict[str, Any]:
        nets = {**all_nets, **ema_nets}
        modes = {k: m.training for k, m in nets.items()}
        for m in nets.values():
            m.eval()
        torch.manual_seed(0)
        out: dict[str, Any] = {}
        try:
            with torch.no_grad():
                out["val_loss"] = stage_val_loss(
                    stage, nets, batch, step, amp, cfg.get("loss_args")
                )
                if full_ok:
                    prec = "bf16" if amp is not None else "fp32"
                    out.update(
                        full_pipeline_scores(
                            pipeline_cls, nets, pairs, device, cfg.get("val_steps"), prec
                        )
                    )
        finally:
            for k, m in nets.items():
                m.train(modes[k])
        return out

    return validate


def _have_runner() -> bool:
    try:
        import lumen_cli.pipelines.run  # noqa: F401
    except ImportError:
        return False
    return True
