"""QMVOS Lab: a readable PyTorch kit for QMVOS (arXiv 2403.11529) and its XMem baseline (ECCV 2022)."""

__version__ = "0.1.0"
