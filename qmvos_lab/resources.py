"""Memory figures for summaries and benchmarks: GPU memory on CUDA, the process's RSS on the CPU."""

from __future__ import annotations

import resource

import torch


def peak_memory_mib(device: torch.device | str) -> float:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def current_memory_mib(device: torch.device | str) -> float:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2 ** 20
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * resource.getpagesize() / 2 ** 20


# ------------------------------------------------------------------------------------------ a budget
STRIDE = 16  # the memory read works on the stride-16 grid
AFFINITY_COPIES = 3  # the similarity's terms and its softmax live at once (model/memory_read.py)
BYTES_PER_PIXEL = 160  # float32 encoder and decoder activations per input pixel (stride 2-4 maps, ~40 channels)


def available_memory_bytes(device: torch.device | str) -> int | None:
    """Free GPU memory on CUDA, MemAvailable of /proc/meminfo on the CPU (None when unknown)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def inference_memory_bytes(height: int, width: int, memory_frames: int) -> int:
    """A lower estimate of segmenting a frame of height x width (after resizing) with `memory_frames`
    frames in working memory: the affinity of the memory read (XMem Eq. 3, memory x query positions
    on the stride-16 grid, float32) and the network's full-resolution activations."""
    cells = -(-height // STRIDE) * -(-width // STRIDE)  # ceil: the padded grid
    affinity = 4 * AFFINITY_COPIES * memory_frames * cells * cells
    return affinity + BYTES_PER_PIXEL * height * width
