"""Classical illumination-map Retinex (LIME-like), no learned weights."""
