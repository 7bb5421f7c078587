"""Contact sheets: a grid of labelled thumbnails, drawn with Pillow.

One row per input photo; its cells (the input, then one per method, then the reference when
there is one) are scaled to a common height and carry a caption of one to three short lines
under the picture. Used by ``lumen compare``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
DIM_TEXT = (170, 170, 170)
PAD = 8


@dataclass
class Cell:
    """One picture of the sheet: (H, W, 3) float32 [0, 1] sRGB pixels and caption lines (the
    first line is the title, drawn brighter)."""

    pixels: np.ndarray
    lines: list[str] = field(default_factory=list)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def _thumb(pixels: np.ndarray, height: int):
    from PIL import Image

    arr = np.clip(np.rint(np.nan_to_num(pixels[..., :3]) * 255), 0, 255).astype(np.uint8)
    im = Image.fromarray(np.ascontiguousarray(arr))
    h, w = arr.shape[:2]
    width = max(1, round(w * height / h))
    if (width, height) != (w, h):
        im = im.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return im


def draw_sheet(rows: list[list[Cell]], height: int = 256, font_size: int = 14) -> np.ndarray:
    """Lay out ``rows`` of cells; returns the sheet as (H, W, 3) uint8 RGB.

    Every thumbnail is ``height`` pixels high (width kept in proportion); columns are as wide
    as their widest thumbnail, and captions are truncated with '…' to that width.
    """
    from PIL import Image, ImageDraw

    if not rows or not any(rows):
        raise ValueError("a contact sheet needs at least one picture")
    font = _font(font_size)
    line_h = font_size + 4
    n_lines = max(len(c.lines) for r in rows for c in r)
    thumbs = [[_thumb(c.pixels, height) for c in r] for r in rows]
    n_cols = max(len(r) for r in rows)
    col_w = [max((t[i].width for t in thumbs if i < len(t)), default=height) for i in range(n_cols)]
    row_h = height + n_lines * line_h + 2 * PAD
    sheet = Image.new("RGB", (sum(col_w) + PAD * (n_cols + 1), row_h * len(rows) + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = PAD
    for cells, ims in zip(rows, thumbs):
        x = PAD
        for i, (cell, im) in enumerate(zip(cells, ims)):
            sheet.paste(im, (x + (col_w[i] - im.width) // 2, y))
            for k, text in enumerate(cell.lines):
                text = _fit(draw, text, font, col_w[i])
                draw.text(
                    (x, y + height + PAD // 2 + k * line_h),
                    text,
                    fill=TEXT if k == 0 else DIM_TEXT,
                    font=font,
                )
            x += col_w[i] + PAD
        y += row_h
    return np.asarray(sheet)


def _fit(draw, text: str, font, width: int) -> str:
    """``text``, shortened with '…' until it fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
