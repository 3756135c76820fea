"""LRC-BERT: latent-representation contrastive distillation of BERT (Fu et al., AAAI 2021), reproduced."""

__version__ = "0.1.0"
