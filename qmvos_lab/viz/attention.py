"""Figures of QMVOS's query-to-readout attention (QCIM cross-attention, Sec. 3.3)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_path


def attention_per_object(cross: torch.Tensor, image_shape: tuple[int, int]) -> np.ndarray:
    """cross: 1 x Nq x heads x No x h x w -> Nq x No x H x W, averaged over heads, upsampled."""
    maps = cross[0].float().mean(1)  # Nq x No x h x w
    maps = F.interpolate(maps, size=image_shape, mode="bilinear", align_corners=False)
    return maps.cpu().numpy()


def attention_figure(image: np.ndarray, result, path: str | os.PathLike) -> Path:
    """A grid: the frame, then for each query (row) its attention over each object's readout (column)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if result.attention is None:
        raise ValueError("this frame has no recorded attention (was it a frame with a given mask?)")
    maps = attention_per_object(result.attention["cross"], image.shape[:2])
    ids = result.internal_ids
    rows, cols = maps.shape[0], maps.shape[1] + 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 1.6 * rows), squeeze=False)
    for q in range(rows):
        axes[q, 0].imshow(image)
        axes[q, 0].set_ylabel(f"query {ids[q]}")
        for o in range(maps.shape[1]):
            axes[q, o + 1].imshow(image)
            axes[q, o + 1].imshow(maps[q, o], cmap="magma", alpha=0.6)
            if q == 0:
                axes[q, o + 1].set_title(f"readout of object {ids[o]}" if maps.shape[1] == len(ids) else "F16")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("QCIM: where each object's query looks, over every object's memory readout")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return Path(path)
