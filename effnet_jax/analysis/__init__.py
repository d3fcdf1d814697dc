"""The papers' experiments as ablations: scaling, compound search, Fused-MBConv placement,
progressive learning, ReXNet's channel study, GradCAM (docs/ablations.md).

Each experiment module has ``run(config, workdir) -> rows``; ``effnet_jax.tools.ablate`` runs one
from a config file and writes ``results.csv`` and the plots.
"""
