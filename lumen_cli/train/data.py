"""Training data from folders: paired (low/ + high/) and unpaired (low + normal) image sets.

Images are decoded once through lumen's own ``io`` (the pixels ``enhance`` sees) and kept in RAM
as uint8 (H,W,3) arrays. Samples are addressed by their position in an endless, seeded stream
(``StreamSampler``), and every random choice of a sample (crop, flips, rotation, synthesis)
comes from a generator seeded by that position, so a run is reproducible and resumable at any
step, with any number of loader workers and any number of distributed ranks.

A batch is a dict of (B,3,h,w) float32 tensors in [0,1], sRGB: ``{"low", "high"}`` for paired
data, ``{"low", "normal"}`` (or only ``{"low"}``) for unpaired data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lumen_cli.ops.color import LUMA

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
_CACHE: dict[tuple[str, int | None], np.ndarray] = {}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)


def read_rgb8(path: Path) -> np.ndarray:
    """(H,W,3) uint8 sRGB pixels of an image file, decoded by ``lumen_cli.io`` (EXIF orientation,
    ICC -> sRGB, alpha dropped): the same pixels ``lumen enhance`` sees."""
    from lumen_cli.io import read_image

    px = read_image(path).pixels[..., :3]
    return np.round(np.clip(px, 0.0, 1.0) * 255.0).astype(np.uint8)


def _resize_short(img: np.ndarray, short: int) -> np.ndarray:
    """Downscale (never upscale) so the short side is ``short``; antialiased bilinear."""
    h, w = img.shape[:2]
    if min(h, w) <= short:
        return img
    s = short / min(h, w)
    size = (max(short, round(h * s)), max(short, round(w * s)))
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    t = torch.nn.functional.interpolate(t, size=size, mode="bilinear", antialias=True)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def load_cached(path: Path, resize: int | None = None) -> np.ndarray:
    key = (str(Path(path).resolve()), resize)
    if key not in _CACHE:
        if resize is not None:
            _CACHE[key] = _resize_short(load_cached(path, None), resize)
        else:
            _CACHE[key] = read_rgb8(path)
    return _CACHE[key]


def paired_files(root: Path) -> list[tuple[Path, Path]]:
    """(low, high) paths of ``root/low`` and ``root/high`` matched by file name (then stem)."""
    root = Path(root)
    low_dir, high_dir = root / "low", root / "high"
    if not low_dir.is_dir() or not high_dir.is_dir():
        raise FileNotFoundError(f"{root}: paired data needs the folders low/ and high/")
    pairs = match_by_name(list_images(low_dir), list_images(high_dir))
    if not pairs:
        raise FileNotFoundError(f"{root}: no file in low/ has a partner of the same name in high/")
    return pairs


def match_by_name(sources: list[Path], targets: list[Path]) -> list[tuple[Path, Path]]:
    """(source, target) pairs matched by file name, else by stem (a .png output of a .jpg)."""
    by_name = {p.name: p for p in targets}
    by_stem = {p.stem: p for p in targets}
    pairs = []
    for src in sources:
        tgt = by_name.get(src.name) or by_stem.get(src.stem)
        if tgt is not None:
            pairs.append((src, tgt))
    return pairs


def mean_luma(img: np.ndarray) -> float:
    return float((img[..., :3].astype(np.float32) @ np.array(LUMA)).mean() / 255)


def unpaired_files(
    root: Path, normal: Path | None = None, low_max: float = 0.22, normal_band=(0.35, 0.65)
) -> tuple[list[Path], list[Path]]:
    """Low-light and normal-light image lists.

    ``root/low`` (+ ``root/normal`` or ``root/high``) when present; ``normal`` names the normal
    folder explicitly; a single flat folder is split by mean luma (low: <= ``low_max``,
    normal: inside ``normal_band``).
    """
    root = Path(root)
    low_dir = root / "low" if (root / "low").is_dir() else root
    if normal is None:
        for cand in ("normal", "high"):
            if (root / cand).is_dir():
                normal = root / cand
                break
    if normal is not None or low_dir != root:
        lows = list_images(low_dir)
        normals = list_images(normal) if normal is not None else []
        return lows, normals
    lows, normals = [], []
    for p in list_images(root):
        m = mean_luma(read_rgb8(p))  # not cached: most frames of a flat folder are dropped
        if m <= low_max:
            lows.append(p)
        elif normal_band[0] <= m <= normal_band[1]:
            normals.append(p)
    return lows, normals


def sample_rng(seed: int, position: int, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, position, salt])


def augment(imgs: list[np.ndarray], crop: int | None, rng, flips=True, rot90=True):
    """Same random crop / flip / rot90 for all images (which share H,W). uint8 in, uint8 out."""
    h, w = imgs[0].shape[:2]
    if crop is not None:
        ch, cw = min(crop, h), min(crop, w)
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        imgs = [im[y : y + ch, x : x + cw] for im in imgs]
    if flips and rng.random() < 0.5:
        imgs = [im[:, ::-1] for im in imgs]
    if rot90:
        k = int(rng.integers(0, 4))
        if imgs[0].shape[0] != imgs[0].shape[1]:
            k = 2 * (k % 2)  # keep the shape of non-square images (batches stay stackable)
        imgs = [np.rot90(im, k) for im in imgs]
    return imgs


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 -> (3,H,W) float32 in [0,1]."""
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).float() / 255.0


@dataclass
class Augment:
    crop: int | None = 128
    resize: int | None = None
    flips: bool = True
    rot90: bool = True


class PairedDataset(torch.utils.data.Dataset):
    """Item = stream position (int). Returns {"low": (3,h,w), "high": (3,h,w)}.

    ``synth`` (a callable (high uint8, rng) -> low uint8) with ``synth_ratio`` > 0 replaces that
    fraction of the low images by low-light versions synthesized from the normal image; pairs
    whose low path is in ``synth_only`` (normal photos listed as (p, p)) are always synthesized.
    """

    def __init__(
        self, pairs, aug: Augment, seed: int, synth=None, synth_ratio: float = 0.0, synth_only=()
    ):
        self.pairs = list(pairs)
        if not self.pairs:
            raise FileNotFoundError("paired data: no image pairs found")
        self.aug, self.seed = aug, seed
        self.synth, self.synth_ratio = synth, synth_ratio
        self.synth_only = set(synth_only)  # low paths that are normal photos: always synthesize
        for lo, hi in self.pairs:
            load_cached(lo, aug.resize), load_cached(hi, aug.resize)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, pos: int) -> dict[str, torch.Tensor]:
        idx, rng = pos_to_index(pos, len(self.pairs), self.seed), sample_rng(self.seed, pos)
        lo_p, hi_p = self.pairs[idx]
        lo, hi = load_cached(lo_p, self.aug.resize), load_cached(hi_p, self.aug.resize)
        if lo.shape != hi.shape:
            raise ValueError(f"{lo_p} and {hi_p} differ in size: {lo.shape} vs {hi.shape}")
        lo, hi = augment([lo, hi], self.aug.crop, rng, self.aug.flips, self.aug.rot90)
        if self.synth is not None and (lo_p in self.synth_only or rng.random() < self.synth_ratio):
            lo = self.synth(np.ascontiguousarray(hi), rng)
        return {"low": to_tensor(lo), "high": to_tensor(hi)}


class UnpairedDataset(torch.utils.data.Dataset):
    """Item = stream position. Returns {"low": (3,h,w)} plus "normal" when normals exist."""

    def __init__(self, lows, normals, aug: Augment, seed: int):
        if not lows:
            raise FileNotFoundError("unpaired data: no low-light images found")
        self.lows, self.normals, self.aug, self.seed = list(lows), list(normals), aug, seed
        for p in self.lows + self.normals:
            load_cached(p, aug.resize)

    def __len__(self) -> int:
        return len(self.lows)

    def __getitem__(self, pos: int) -> dict[str, torch.Tensor]:
        rng = sample_rng(self.seed, pos)
        lo = load_cached(self.lows[pos_to_index(pos, len(self.lows), self.seed)], self.aug.resize)
        out = {
            "low": to_tensor(augment([lo], self.aug.crop, rng, self.aug.flips, self.aug.rot90)[0])
        }
        if self.normals:
            j = pos_to_index(pos, len(self.normals), self.seed + 1)
            no = load_cached(self.normals[j], self.aug.resize)
            out["normal"] = to_tensor(
                augment([no], self.aug.crop, rng, self.aug.flips, self.aug.rot90)[0]
            )
        return out


def pos_to_index(pos: int, n: int, seed: int) -> int:
    """Stream position -> item index: epoch ``pos // n`` is a seeded permutation of range(n)."""
    epoch, off = divmod(pos, n)
    perm = np.random.default_rng([seed, epoch, 7919]).permutation(n)
    return int(perm[off])


class StreamSampler(torch.utils.data.Sampler):
    """Endless stream of sample positions for one rank, starting at a given optimizer step.

    The global stream is cut into global batches of ``batch_size * world`` positions; rank r
    takes the r-th slice of ``batch_size`` of each (like ``DistributedSampler``, but endless and
    resumable mid-epoch: the position only depends on the step).
    """

    def __init__(self, batch_size: int, start_step: int = 0, rank: int = 0, world: int = 1):
        self.b, self.step, self.rank, self.world = batch_size, start_step, rank, world

    def __iter__(self):
        step = self.step
        while True:
            base = (step * self.world + self.rank) * self.b
            yield from range(base, base + self.b)
            step += 1

    def __len__(self) -> int:  # endless; DataLoader only needs it for len()
        return 2**62


def make_loader(dataset, batch_size: int, start_step: int, num_workers: int = 0, rank=0, world=1):
    sampler = StreamSampler(batch_size, start_step, rank, world)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        persistent_workers=num_workers > 0,
    )


def center_crops(pairs, size: int | None, limit: int = 8) -> dict[str, torch.Tensor]:
    """A fixed validation batch: center crops (or whole images if size is None) of pairs."""
    lows, highs = [], []
    for lo_p, hi_p in list(pairs)[:limit]:
        lo, hi = load_cached(lo_p), load_cached(hi_p)
        if size is not None:
            h, w = lo.shape[:2]
            s = min(size, h, w)
            y, x = (h - s) // 2, (w - s) // 2
            lo, hi = lo[y : y + s, x : x + s], hi[y : y + s, x : x + s]
        lows.append(to_tensor(lo))
        highs.append(to_tensor(hi))
    return {"low": torch.stack(lows), "high": torch.stack(highs)}
