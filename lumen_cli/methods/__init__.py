"""One sub-package per published method, each holding that method's whole recipe.

``lumen_cli/methods/<name>/``:

- ``nets.py``: the paper's modules (``nn.Module`` classes, registered by arch name in
  ``lumen_cli.nets.registry.ARCHS``);
- ``pipeline.py``: inference, a ``lumen_cli.pipelines.base.Pipeline`` subclass whose
  ``enhance`` / ``decompose`` read as numbered steps (diffusers' ``pipeline_ddim.py``);
- ``train.py``: losses, training stages, augmentation;
- ``convert.py``: the official checkpoint -> lumen ``paper`` preset key map, called by
  ``lumen weights convert`` through ``lumen_cli.weights.convert.CONVERTERS``.

Methods are listed explicitly in ``lumen_cli.pipelines.registry.METHODS`` (no folder scans).
"""
