"""lumen: low-light photo enhancement (Retinex + diffusion) from the command line."""

__version__ = "0.1.0"
