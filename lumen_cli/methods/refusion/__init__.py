"""Refusion / IR-SDE (Luo et al., ICML 2023; Refusion, CVPRW 2023): nets, SDE pipeline,
training, official checkpoint conversion."""
