"""Diff-Retinex (Yi, Xu, Zhang, Ma, ICCV 2023): nets, pipeline, training."""
