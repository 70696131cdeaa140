"""Training: losses, the training pass over a clip (XMem's recipe, kept by QMVOS), the trainer."""

from .clip_pass import PassConfig, TrainWrapper

__all__ = ["PassConfig", "TrainWrapper"]
