import pytest
import torch

from lumen_cli import tiling
from lumen_cli.methods.retinex.pipeline import RetinexPipeline
from lumen_cli.pipelines.base import EnhanceOptions, Pipeline, crop_ctx
from lumen_cli.pipelines.run import decompose_image, enhance_image


def test_split_covers_with_overlap():
    for n, tile, ov in [(100, 40, 8), (37, 16, 4), (64, 64, 8), (10, 64, 8), (257, 128, 32)]:
        spans = tiling.split_1d(n, tile, ov)
        assert spans[0][0] == 0 and spans[-1][1] == n
        for (_, a1), (b0, _) in zip(spans, spans[1:]):
            assert a1 - b0 >= min(ov, tile // 2)  # overlap kept
        assert all(e - s <= tile for s, e in spans)


def test_split_makes_windows_no_longer_than_needed():
    for n, tile, ov, mult in [(1024, 800, 32, 16), (4000, 800, 32, 16), (6000, 800, 128, 1)]:
        spans = tiling.split_1d(n, tile, ov, mult)
        lengths = {e - s for s, e in spans}
        assert len(lengths) == 1 and lengths.pop() % mult == 0
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a1 - b0 >= ov for (_, a1), (b0, _) in zip(spans, spans[1:]))
        assert sum(e - s for s, e in spans) <= 1.2 * n  # was 1.56 n for 1024 / 800
    assert tiling.split_1d(1024, 800, 32, 16) == [(0, 544), (480, 1024)]


def test_weights_sum_positive_and_ramps():
    spans = tiling.split_1d(100, 40, 10)
    total = tiling.weight_sum_1d(100, spans)
    assert (total > 0.99).all()  # ramps of neighbours add up to ~1 in overlaps
    w = tiling.ramp_1d(*spans[1], 100, spans)
    assert w[0] < 0.2 and w[len(w) // 2] == 1


def test_extract_pads_by_reflection():
    x = torch.arange(20.0).view(1, 1, 4, 5)
    t = tiling.extract(x, 0, 0, 6, 8)
    assert t.shape == (1, 1, 6, 8)
    assert torch.equal(t[..., :4, :5], x)
    assert t[0, 0, 4, 0] == x[0, 0, 2, 0]  # mirrored about the last row


def test_crop_ctx_lowres_and_outside():
    full = torch.rand(1, 1, 20, 30)
    assert torch.equal(crop_ctx(full, (2, 3, 10, 12), (20, 30)), full[..., 2:10, 3:12])
    past = crop_ctx(full, (16, 0, 24, 30), (20, 30))
    assert past.shape[-2:] == (8, 30) and torch.equal(
        past[..., 4:, :], full[..., 19:, :].expand(1, 1, 4, 30)
    )
    const = torch.full((1, 1, 5, 5), 0.3)
    assert torch.allclose(crop_ctx(const, (0, 0, 40, 40), (40, 40)), torch.tensor(0.3))


class _Shift(Pipeline):
    """Pads to multiples of 8 and adds a global mean computed in analyze."""

    size_multiple = 8

    def analyze(self, x, opts, generator):
        return {"mean": x.mean()}

    def enhance(self, x, ctx, region, opts):
        assert x.shape[-1] % 8 == 0 and x.shape[-2] % 8 == 0
        return (x * 0.5 + ctx["mean"] * 0.5).clamp(0, 1)


def test_tiled_equals_untiled_padding_and_global_stats():
    x = torch.rand(1, 3, 45, 70)
    pipe = _Shift()
    whole = enhance_image(pipe, x, tile=None, precision="fp32")
    tiled = enhance_image(pipe, x, tile=24, overlap=8, precision="fp32")
    assert whole.shape == x.shape
    assert torch.allclose(whole, tiled, atol=1e-6)


def test_retinex_tiled_matches_untiled(dim_image):
    x = torch.from_numpy(dim_image(96, 128)).permute(2, 0, 1)[None]
    pipe = RetinexPipeline()
    a = enhance_image(pipe, x, EnhanceOptions(), tile=None)
    b = enhance_image(pipe, x, EnhanceOptions(), tile=48, overlap=16)
    assert (a - b).abs().max() < 2 / 255
    maps = decompose_image(pipe, x, tile=48, overlap=16)
    assert maps["reflectance"].shape == (1, 3, 96, 128)
    assert maps["illumination"].shape == (1, 1, 96, 128)


def test_auto_tile_bounded():
    dev = torch.device("cpu")
    assert tiling.auto_tile(64, 64, 400, dev) is None
    t = tiling.auto_tile(6000, 4000, 10**6, dev, multiple=16)
    assert t is not None and t % 16 == 0 and 128 <= t <= 2048


def test_in_order_runs_the_first_item_here_then_the_rest_in_parallel_in_order():
    import threading
    import time

    from lumen_cli.pipelines.run import in_order

    here = threading.get_ident()
    live, peak, lock = [0], [0], threading.Lock()

    def fn(i, delay):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(delay)
        with lock:
            live[0] -= 1
        return i, threading.get_ident(), torch.get_num_threads()

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        items = [(i, 0.02 * ((i * 7) % 3)) for i in range(9)]  # uneven: finish out of order
        out = list(in_order(fn, items, workers=2))
        assert torch.get_num_threads() == 2  # restored after the workers took one each
    finally:
        torch.set_num_threads(threads)
    assert [o[0] for o in out] == list(range(9))
    assert out[0][1] == here and all(o[1] != here for o in out[1:])
    assert all(o[2] == 1 for o in out[1:])  # each worker: threads // workers
    assert peak[0] == 2
    assert [o[0] for o in in_order(fn, items[:3], workers=1)] == [0, 1, 2]


def test_in_order_raises_a_worker_error_and_stops():
    from lumen_cli.pipelines.run import in_order

    def fn(i):
        if i == 3:
            raise ValueError("tile 3")
        return i

    got = []
    with pytest.raises(ValueError, match="tile 3"):
        for r in in_order(fn, [(i,) for i in range(8)], workers=2):
            got.append(r)
    assert got == [0, 1, 2]


def test_tile_workers_policy(monkeypatch):
    from lumen_cli.devices import tile_workers

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cpu = torch.device("cpu")
        monkeypatch.delenv("LUMEN_TILE_WORKERS", raising=False)
        assert tile_workers(cpu, 2) == 1  # one tile after the first: nothing to share
        assert tile_workers(cpu, 48) == 2
        monkeypatch.setenv("LUMEN_TILE_WORKERS", "1")
        assert tile_workers(cpu, 48) == 1
        monkeypatch.setenv("LUMEN_TILE_WORKERS", "8")
        assert tile_workers(cpu, 48) == 2  # never more than the threads
        torch.set_num_threads(2)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as ex:  # an application's own thread: tiles in turn
            monkeypatch.delenv("LUMEN_TILE_WORKERS", raising=False)
            assert ex.submit(tile_workers, cpu, 48).result() == 1
        torch.set_num_threads(1)
        assert tile_workers(cpu, 48) == 1
        assert tile_workers(torch.device("cuda"), 48) == 1
    finally:
        torch.set_num_threads(threads)
