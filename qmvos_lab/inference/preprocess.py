"""Frame and mask preparation: ImageNet normalisation, shorter-side resize, padding to a
multiple of 16 (the network's stride), and the way back to the original resolution."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.frames import IMAGENET_MEAN, IMAGENET_STD


def to_image_tensor(image, device: torch.device | str = "cpu") -> torch.Tensor:
    """H x W x 3 uint8 (numpy or PIL) -> 3 x H x W float in [0, 1], ImageNet-normalised."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {array.shape}")
    x = torch.from_numpy(np.array(array, dtype=np.uint8)).to(device).permute(2, 0, 1).float() / 255  # 3 x H x W
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    return (x - mean) / std


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Shape with the shorter side at `size` (as torchvision's Resize(size)); size -1 keeps it."""
    if size <= 0:
        return height, width
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def resize_image(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """C x H x W -> C x h x w, bilinear with antialiasing (torchvision's default for tensors)."""
    if tuple(image.shape[-2:]) == tuple(shape):
        return image
    return F.interpolate(image[None], size=shape, mode="bilinear", align_corners=False, antialias=True)[0]


def resize_masks(masks: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """N x H x W one-hot masks -> N x h x w, nearest neighbour (as the official evaluation)."""
    if tuple(masks.shape[-2:]) == tuple(shape):
        return masks
    return F.interpolate(masks[None], size=shape, mode="nearest")[0]


def pad_to_multiple(x: torch.Tensor, multiple: int = 16) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Zero-pad the last two axes to multiples of `multiple`, centred (the extra pixel at the end).

    Returns the padded tensor and (left, right, top, bottom).
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return F.pad(x, pad), pad


def unpad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = pad
    height, width = x.shape[-2:]
    return x[..., top:height - bottom, left:width - right]
