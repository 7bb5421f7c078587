"""A 24-megapixel photo goes through the classical method with peak memory under 2 GB."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys
from lumen_cli.cli.app import main
rc = main(["enhance", sys.argv[1], "-o", sys.argv[2], "-q"])
print(rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_24_megapixel_classical_under_2gb(tmp_path):
    h, w = 4000, 6000
    row = np.linspace(8, 60, w, dtype=np.float32)
    img = (row[None, :, None] * np.array([1.0, 0.9, 0.7], np.float32)).astype(np.uint8)
    img = np.broadcast_to(img, (h, w, 3)).copy()
    img[::97] = 200  # some structure
    src = tmp_path / "big.jpg"
    Image.fromarray(img).save(src, quality=90)
    del img
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUMEN_THREADS": "2"}
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(tmp_path / "out.jpg")],
        capture_output=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr.decode()
    rc, peak_kb = map(int, r.stdout.split())
    assert rc == 0
    assert peak_kb / 1024 < 2048, f"peak RSS {peak_kb / 1024:.0f} MB"
    assert Image.open(tmp_path / "out.jpg").size == (w, h)
