"""lumen: low-light photo enhancement (Retinex + diffusion) from the command line.

Library API (imported on first use, so ``import lumen_cli`` and ``lumen --version`` stay fast)::

    lumen_cli.enhance(image, method="kind", steps=None, seed=0, exposure=None, device="auto")
    lumen_cli.decompose(image, method="retinex")

See ``lumen_cli.api``.
"""

__version__ = "0.1.0"

_API = ("enhance", "decompose", "enhance_tensor", "decompose_tensor", "load")


def __getattr__(name: str):
    if name in _API:
        from lumen_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'lumen_cli' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
