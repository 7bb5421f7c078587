"""Image I/O: the only place lumen touches Pillow and OpenCV (imported lazily).

read_image(path | bytes) -> Picture (float32 sRGB pixels, upright, alpha and metadata kept);
write_image(picture, result_pixels, dest) writes the result back atomically.
"""

from lumen_cli.io.picture import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageReadError,
    ImageWriteError,
    OutputExistsError,
    Picture,
    output_format_for,
)
from lumen_cli.io.read import read_image
from lumen_cli.io.write import write_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ImageWriteError",
    "OutputExistsError",
    "Picture",
    "output_format_for",
    "read_image",
    "write_image",
]
