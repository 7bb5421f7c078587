"""LightenDiffusion (Jiang et al., ECCV 2024): unsupervised latent-Retinex diffusion.

``nets`` (CTDN: encoder/decoder + Retinex decomposition of the latent), ``unet`` (the LRDM's
DDPM U-Net), ``pipeline`` (inference), ``train`` (stage 1 and stage 2, unpaired), ``convert``
(the official ``stage2_weight.pth.tar``)."""
