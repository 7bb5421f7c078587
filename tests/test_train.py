"""The training engine on a tiny test method (2-conv net, one stage) and generated images."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
from torch import nn

from lumen_cli.nets.registry import ARCHS
from lumen_cli.pipelines import registry
from lumen_cli.pipelines.base import Pipeline
from lumen_cli.train.stage import Stage


class TinyNet(nn.Module):
    """x: (B,3,h,w) in [0,1] -> (B,3,h,w): a learned gain plus a small conv residual."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.a = nn.Conv2d(3, width, 3, padding=1)
        self.b = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


def tiny_loss(nets, batch, step):
    out = nets["net"](batch["low"])
    loss = (out - batch["high"]).abs().mean()
    return loss, {"l1": float(loss.detach())}


class TinyPipeline(Pipeline):
    method = "tiny"
    presets = {"lite": {"net": ("test.tiny", {"width": 8})}}

    @classmethod
    def stages(cls):
        return [
            Stage(
                "main",
                trains=("net",),
                loss=tiny_loss,
                defaults={
                    "lr": 3e-3,
                    "steps": 300,
                    "batch_size": 4,
                    "crop": 16,
                    "warmup": 10,
                    "ema": 0.9,
                    "val_crop": 24,
                    "log_every": 10,
                    "precision": "fp32",
                },
            )
        ]

    def analyze(self, x, opts, generator):
        return {}

    def enhance(self, x, ctx, region, opts):
        return self.nets["net"](x).clamp(0, 1)


def register_tiny():
    ARCHS["test.tiny"] = f"{__name__}:TinyNet"
    registry.METHODS["tiny"] = registry.MethodInfo("tiny", "test", f"{__name__}:TinyPipeline")


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(ARCHS, "test.tiny", f"{__name__}:TinyNet")
    monkeypatch.setitem(
        registry.METHODS, "tiny", registry.MethodInfo("tiny", "test", f"{__name__}:TinyPipeline")
    )


def make_pairs(root, n=6, size=24, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for sub in ("low", "high"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = rng.uniform(0.2, 0.9, size=(4, 4, 3))
        hi = np.kron(base, np.ones((size // 4, size // 4, 1)))  # blocky, smooth-ish
        hi = np.clip(hi + rng.normal(0, 0.03, hi.shape), 0, 1)
        lo = hi * 0.3
        Image.fromarray((hi * 255).round().astype(np.uint8)).save(root / "high" / f"{i:03d}.png")
        Image.fromarray((lo * 255).round().astype(np.uint8)).save(root / "low" / f"{i:03d}.png")
    return root


def _train(data, out, **kw):
    from lumen_cli.train.runner import train

    kw.setdefault("threads", 1)
    return train("tiny", data, out, **kw)


def _records(out, kind):
    return [
        json.loads(line)
        for line in (out / "log.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == kind
    ]


def test_tiny_method_trains_and_val_loss_falls(tiny, tmp_path):
    data = make_pairs(tmp_path / "train", n=8)
    val = make_pairs(tmp_path / "val", n=3, seed=1)
    summary = _train(data, tmp_path / "run", val=val, sets=["val_every=100"])
    rec = summary["stages"]["main"]
    assert rec["complete"] and rec["step"] == 300
    vals = _records(tmp_path / "run", "val")
    assert [v["step"] for v in vals] == [100, 200, 300]
    first_train = _records(tmp_path / "run", "train")[0]["loss"]
    assert vals[-1]["val_loss"] < 0.5 * first_train
    # full-pipeline PSNR through enhance_image, when the runner module is present
    if "psnr" in vals[-1]:
        assert vals[-1]["psnr"] > 20 and 0 < vals[-1]["ssim"] <= 1
    assert (tmp_path / "run" / "main" / "final.pt").exists()
    assert (tmp_path / "run" / "main" / "best.pt").exists()


def _final_weights(out):
    ck = torch.load(out / "main" / "last.pt", weights_only=True)
    return ck["nets"]["net"], ck["ema"]["nets"]["net"], ck["opt"]


def test_resume_matches_uninterrupted_run(tiny, tmp_path):
    data = make_pairs(tmp_path / "train", n=5)
    sets = ["steps=40", "ckpt_every=7", "val_every=0"]
    _train(data, tmp_path / "a", sets=sets)
    s1 = _train(data, tmp_path / "b", sets=sets, max_steps=17)
    assert s1["stopped"] == "max-steps" and s1["stages"]["main"]["step"] == 17
    with pytest.raises(Exception, match="--resume"):
        _train(data, tmp_path / "b", sets=sets)
    s2 = _train(data, tmp_path / "b", resume=True)
    assert s2["stages"]["main"]["complete"]
    wa, ea, oa = _final_weights(tmp_path / "a")
    wb, eb, ob = _final_weights(tmp_path / "b")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
        assert torch.equal(ea[k], eb[k]), k
    assert oa["state"][0]["step"] == ob["state"][0]["step"]
    # an uninterrupted run with a different seed differs (the comparison is not vacuous)
    _train(data, tmp_path / "c", sets=sets, seed=1)
    wc, _, _ = _final_weights(tmp_path / "c")
    assert not torch.equal(wa["a.weight"], wc["a.weight"])


def test_time_budget_stops_with_checkpoint(tiny, tmp_path):
    data = make_pairs(tmp_path / "train", n=4)
    s = _train(data, tmp_path / "run", sets=["steps=50"], time_budget="0s")
    assert s["stopped"] == "time-budget"
    ck = torch.load(tmp_path / "run" / "main" / "last.pt", weights_only=True)
    assert ck["step"] == 1 and ck["reason"] == "time-budget"
    s = _train(data, tmp_path / "run", resume=True)
    assert s["stages"]["main"]["complete"] and s["stages"]["main"]["step"] == 50


def test_ctrl_c_stops_at_a_step_with_checkpoint(tiny, tmp_path, monkeypatch):
    import signal

    def interrupting_loss(nets, batch, step):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during step 5
        return tiny_loss(nets, batch, step)

    monkeypatch.setattr(
        TinyPipeline,
        "stages",
        classmethod(
            lambda cls: [
                Stage("main", trains=("net",), loss=interrupting_loss, defaults={"steps": 30})
            ]
        ),
    )
    data = make_pairs(tmp_path / "train", n=4)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    s = _train(data, tmp_path / "run")
    assert s["stopped"] == "interrupted"
    ck = torch.load(tmp_path / "run" / "main" / "last.pt", weights_only=True)
    assert ck["step"] == 5 and ck["reason"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is restored


def test_export_writes_loadable_safetensors(tiny, tmp_path):
    pytest.importorskip("lumen_cli.weights.checkpoint")
    from lumen_cli.train.export import export_run
    from lumen_cli.weights.checkpoint import load_nets

    data = make_pairs(tmp_path / "train", n=4)
    _train(data, tmp_path / "run", sets=["steps=20"], command="lumen train --method tiny")
    res = export_run(tmp_path / "run", tmp_path / "tiny-test.safetensors")
    assert len(res["sha256"]) == 64
    method, nets, meta = load_nets(tmp_path / "tiny-test.safetensors")
    assert method == "tiny" and set(nets) == {"net"}
    ema = torch.load(tmp_path / "run" / "main" / "final.pt", weights_only=True)["ema"]["net"]
    for k, v in nets["net"].state_dict().items():
        assert torch.equal(v, ema[k]), k
    prov = meta["lumen.provenance"]
    prov = json.loads(prov) if isinstance(prov, str) else prov
    assert prov["steps"] == 20 and prov["stage_steps"] == {"main": 20}
    assert prov["command"] == "lumen train --method tiny"
    import tomllib

    entry = tomllib.loads(res["manifest"])["weights"]["tiny-test"]
    assert entry["sha256"] == res["sha256"] and entry["repo_id"] == "lumen-cli/tiny-test"
    assert entry["provenance"]["steps"] == 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, data, out, result_dir):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    register_tiny()
    from lumen_cli.train import dist
    from lumen_cli.train.runner import train

    try:
        s = train("tiny", data, out, sets=["steps=12", "batch_size=2"], threads=1, device="cpu")
        # train() joined torchrun's group and leaves it destroyed behind it
        torch.save(
            {"summary": s, "world": s["world_size"], "left_group": not dist.active()},
            result_dir / f"rank{rank}.pt",
        )
    finally:
        dist.shutdown()


def test_ddp_two_cpu_processes(tiny, tmp_path):
    import torch.multiprocessing as mp

    data = make_pairs(tmp_path / "train", n=6)
    res = tmp_path / "res"
    res.mkdir()
    mp.spawn(_ddp_worker, args=(2, _free_port(), data, tmp_path / "run", res), nprocs=2)
    r0 = torch.load(res / "rank0.pt", weights_only=False)
    r1 = torch.load(res / "rank1.pt", weights_only=False)
    assert r0["world"] == 2 and r1["world"] == 2
    assert r0["left_group"] and r1["left_group"]
    assert r0["summary"]["stages"]["main"]["complete"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["world_size"] == 2
    ck = torch.load(tmp_path / "run" / "main" / "last.pt", weights_only=True)
    assert ck["step"] == 12 and len(ck["rng"]) == 2  # one RNG state per rank
    # 2 ranks x batch 2 see the same samples as 1 process x batch 4, and DDP averages the
    # gradients: the weights agree up to float rounding
    _train(data, tmp_path / "single", sets=["steps=12", "batch_size=4"])
    single = torch.load(tmp_path / "single" / "main" / "last.pt", weights_only=True)
    for k, v in single["nets"]["net"].items():
        torch.testing.assert_close(ck["nets"]["net"][k], v, atol=1e-5, rtol=1e-4)


def test_stages_run_in_order_and_stage_flag(tiny, tmp_path, monkeypatch):
    def second_loss(nets, batch, step):
        out = nets["post"](nets["net"](batch["low"]))
        loss = (out - batch["high"]).abs().mean()
        return loss, {}

    monkeypatch.setitem(
        TinyPipeline.presets,
        "lite",
        {"net": ("test.tiny", {"width": 4}), "post": ("test.tiny", {"width": 4})},
    )
    monkeypatch.setattr(
        TinyPipeline,
        "stages",
        classmethod(
            lambda cls: [
                Stage("first", trains=("net",), loss=tiny_loss, defaults={"steps": 6, "crop": 16}),
                Stage(
                    "second",
                    trains=("post",),
                    uses=("net",),
                    loss=second_loss,
                    defaults={"steps": 4, "crop": 16},
                ),
            ]
        ),
    )
    data = make_pairs(tmp_path / "train", n=4)
    run = tmp_path / "run"
    with pytest.raises(Exception, match="run --stage first first"):
        _train(data, run, stage="second")
    _train(data, run, stage="first")
    s = _train(data, run, stage="second")
    assert s["stages"]["second"]["complete"]
    first = torch.load(run / "first" / "final.pt", weights_only=True)["ema"]["net"]
    second = torch.load(run / "second" / "last.pt", weights_only=True)
    assert second["step"] == 4
    # the frozen net of stage "first" was not changed by stage "second"
    from lumen_cli.train.export import export_run

    pytest.importorskip("lumen_cli.weights.checkpoint")
    from lumen_cli.weights.checkpoint import load_nets

    export_run(run, tmp_path / "two.safetensors")
    _, nets, _ = load_nets(tmp_path / "two.safetensors")
    for k, v in nets["net"].state_dict().items():
        assert torch.equal(v, first[k])
    # a whole-run call finds both stages done and trains nothing
    s = _train(data, run, resume=True)
    assert all(r.get("complete") for r in s["stages"].values())


def test_loss_args_reach_the_stage_loss_and_are_checked(tiny, tmp_path, monkeypatch):
    seen = []

    def scaled_loss(nets, batch, step, scale: float = 1.0):
        seen.append(scale)
        loss, logs = tiny_loss(nets, batch, step)
        return loss * scale, logs

    monkeypatch.setattr(
        TinyPipeline,
        "stages",
        classmethod(
            lambda cls: [Stage("main", ("net",), scaled_loss, defaults={"steps": 3, "crop": 16})]
        ),
    )
    data = make_pairs(tmp_path / "train", n=4)
    _train(data, tmp_path / "run", val=data, sets=["main.loss_args.scale=0.5", "val_every=3"])
    assert seen and set(seen) == {0.5}  # training steps and the validation loss alike
    with pytest.raises(Exception, match="takes no argument"):
        _train(data, tmp_path / "run2", sets=["main.loss_args.scael=0.5"])
