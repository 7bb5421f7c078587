"""Weights: checkpoint files (safetensors), the manifest, and where files come from.

This room is the only importer of ``safetensors`` and ``huggingface_hub``; both are imported
inside functions so that ``lumen --help`` stays fast.

- ``checkpoint``: ``save_nets`` / ``load_nets`` / ``read_metadata`` (self-describing files).
- ``manifest``: ``weights_manifest.toml`` -> ``WeightEntry`` objects, and writing entries back.
- ``resolve``: ``--weights PATH`` > HF cache / Hub (pinned revision) > bundled copy, sha256 checked.
"""
