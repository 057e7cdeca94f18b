"""LSD-seg: sim-to-real semantic segmentation (Sankaranarayanan et al., CVPR 2018)."""
__version__ = "0.1.0"
