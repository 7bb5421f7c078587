"""LLDiffusion (Wang et al., "LLDiffusion: Learning Degradation Representations in Diffusion
Models for Low-Light Image Enhancement", Pattern Recognition 2025): a degradation encoder
conditions an eps-prediction diffusion U-Net; a time-free generator trained jointly makes the
degradation features describe what darkness did to the photo."""
