"""Split a paired folder (low/, high/) into scene-disjoint folds of symbolic links.

SICE file names start with their scene (``s043_0336.jpg``: scene 43), and one scene holds
several low frames of one reference. A hold-out made of random pairs shares scenes with the
pairs it is compared with, so it measures memorised scenes; this script puts every pair of a
scene in the same fold (scene number modulo ``--folds``), so a net trained on one fold can be
measured on another without touching sice/val.

    python benchmarks/scene_folds.py ../shared/data/sice/train /tmp/fold --folds 2
    # -> /tmp/fold/A/{low,high}, /tmp/fold/B/{low,high}
"""

from __future__ import annotations

import argparse
import re
import string
from pathlib import Path

SCENE = re.compile(r"^s?(\d+)_")


def scene_of(name: str) -> int:
    """The scene number a SICE-style file name starts with (``s043_0336.jpg`` -> 43)."""
    m = SCENE.match(name)
    if m is None:
        raise ValueError(f"{name}: no scene prefix (sNNN_)")
    return int(m.group(1))


def make_folds(data: Path, out: Path, folds: int = 2) -> dict[str, int]:
    """Write ``out``/A, B, ... (``folds`` of them), each with low/ and high/ links to the
    pairs of the scenes whose number is that fold's index modulo ``folds``; returns the number
    of pairs per fold."""
    from lumen_cli.train.data import paired_files

    pairs, counts = paired_files(data.resolve()), {}
    for i, letter in enumerate(string.ascii_uppercase[:folds]):
        mine = [pair for pair in pairs if scene_of(pair[0].name) % folds == i]
        for sub, k in (("low", 0), ("high", 1)):
            (out / letter / sub).mkdir(parents=True, exist_ok=True)
            for pair in mine:
                link = out / letter / sub / pair[0].name  # the trainer pairs by name
                if not link.is_symlink():
                    link.symlink_to(pair[k])
        counts[letter] = len(mine)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="paired folder with low/ and high/")
    ap.add_argument("out", type=Path, help="where the fold folders go (A, B, ...)")
    ap.add_argument("--folds", type=int, default=2)
    args = ap.parse_args()
    for letter, n in make_folds(args.data, args.out, args.folds).items():
        print(f"{args.out / letter}: {n} pairs")


if __name__ == "__main__":
    main()
