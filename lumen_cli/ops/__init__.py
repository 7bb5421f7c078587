"""Image operations shared by methods, metrics and training: filters (``filters``), colour
(``color``: one BT.601 luma, YCbCr, the exact sRGB transfer) and resizing (``resize``).

Tensors in, tensors out; no nets, no files. Everything above (``retinex``, ``prior``,
``methods``, ``noref``, ``train``) may import these modules; they import nothing of lumen's.
"""
