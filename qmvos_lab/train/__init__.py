"""Training: losses, the training pass over a clip (XMem's recipe, kept by QMVOS)."""
