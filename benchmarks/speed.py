"""Inference speed, side by side in one run: our XMem and QMVOS in fp32 and in the fast modes, and
the official XMem evaluation loop (given a checkout of it), on the same weights and the same frames.

    python benchmarks/speed.py                                   # CPU: 427x240, 2 threads, 2 objects
    python benchmarks/speed.py --xmem-repo PATH/TO/XMem --csv outputs/speed/inference.csv
    python benchmarks/speed.py --device cuda --xmem-repo PATH/TO/XMem   # GPU: 854x480, AMP and compile too

A mode is `fp32` or `amp`, optionally with `+channels-last` and `+compile` (inference/fast.py).
Every run segments the same generated clip (2 objects given on frame 0, the clip played forwards
and backwards to `--frames`) from prepared, normalised frames that are uploaded inside the timed
loop (pinned, non-blocking on a GPU); the first `--warmup` frames are not timed. Weights are the
parity benchmarks' seeded random weights (benchmarks/parity_cases.py), loaded into ours and into
the official network alike; QMVOS shares XMem's and draws its own query modules.

Printed per (network, mode): FPS, ms a frame, the ratio to the official loop (base networks only;
its AMP run on a GPU, where the official evaluation uses fp16 autocast; fp32 on a CPU), QMVOS / XMem
time for the same size and mode, memory (peak allocated during the run on a GPU; on a CPU the
process RSS after it, which only grows from row to row), and the agreement with our fp32 result of
the same network (max |dprob| and argmax agreement over the checked frames; the official loop is
compared with our fp32 XMem). fp32 always runs, first, as each network's reference. `--csv` writes the same table. Random weights leave most pixels near a tie, so
their argmax agreement understates a mode's fidelity; `--trained` takes the small networks from
the trained-network cache instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from parity_cases import DIMS, official_config, seeded_state  # noqa: E402

from qmvos_lab.atomic import atomic_path  # noqa: E402
from qmvos_lab.config import InferenceConfig, ModelConfig  # noqa: E402
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video  # noqa: E402
from qmvos_lab.inference import InferenceCore  # noqa: E402
from qmvos_lab.inference.fast import autocast_dtype, prepare_network  # noqa: E402
from qmvos_lab.inference.preprocess import to_image_tensor  # noqa: E402
from qmvos_lab.model import build_network  # noqa: E402
from qmvos_lab.resources import current_memory_mib  # noqa: E402

NETWORKS = ("xmem", "qmvos", "xmem-small", "qmvos-small")
PAPER_FPS = {"xmem": 38.1, "qmvos": 37.6}  # QMVOS Table 3a (their GPU, DAVIS-2017 val)


def parse_mode(mode: str) -> dict:
    """'amp+channels-last' -> {'amp': True, 'channels_last': True, 'compile': False}."""
    parts = mode.split("+")
    if parts[0] not in ("fp32", "amp") or not set(parts[1:]) <= {"channels-last", "compile"}:
        raise SystemExit(f"--modes: {mode!r} is not fp32|amp[+channels-last][+compile]")
    return {"amp": parts[0] == "amp", "channels_last": "channels-last" in parts, "compile": "compile" in parts}


def make_network(name: str, seed: int = 0, trained: bool = False) -> torch.nn.Module:
    """A base or small XMem / QMVOS with seeded random weights; QMVOS shares XMem's (same size).
    `trained`: the small networks come from the kit's cache of trained networks (qmvos_lab.zoo,
    cpu-tiny; trained once when missing), so that the agreement figures are those of networks that
    segment (random weights leave most pixels near a tie, where any rounding flips the argmax)."""
    size = "small" if name.endswith("-small") else "base"
    if trained and size == "small":
        from qmvos_lab import zoo

        return zoo.trained(name).eval()
    xmem = build_network(ModelConfig.of_size(size))
    xmem_state = seeded_state(xmem.state_dict(), seed)
    if not name.startswith("qmvos"):
        xmem.load_state_dict(xmem_state)
        return xmem.eval()
    qmvos = build_network(ModelConfig.of_size(size, queries=True))
    state = seeded_state(qmvos.state_dict(), seed + 1)
    state.update({k: v for k, v in xmem_state.items() if k in state})
    qmvos.load_state_dict(state)
    return qmvos.eval()


def clip(frames: int, height: int, width: int, objects: int, device: torch.device):
    """Normalised frames 3 x H x W (pinned on a GPU host) and the first frame's one-hot masks."""
    video = generate_video(SyntheticConfig(num_objects=objects, length=50, height=height, width=width,
                                           occlusion_rate=0.0), seed=0)
    order = list(range(50)) + list(range(49, -1, -1))
    images = [to_image_tensor(video.frames[order[t % 100]]) for t in range(frames)]
    if device.type == "cuda":
        images = [image.pin_memory() for image in images]
    masks = torch.stack([torch.from_numpy(video.labels[0] == i + 1) for i in range(objects)]).float()
    return images, masks.to(device)


def timed_loop(core, images, first_masks, device, warmup: int, check_every: int, amp: bool = False,
               official: bool = False):
    """Segment the clip with `core` (ours or the official InferenceCore: the same step signature).
    Returns (seconds a timed frame, memory MiB, {frame: probabilities} of the checked frames)."""
    labels = list(range(1, first_masks.shape[0] + 1))
    core.set_all_labels(labels)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    dtype = autocast_dtype(device) if not official else torch.float16  # the official evaluation: fp16 autocast
    checked, tic = {}, time.perf_counter()
    for t, image in enumerate(images):
        if t == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            tic = time.perf_counter()
        image = image.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            prob = core.step(image, first_masks if t == 0 else None, labels if t == 0 else None,
                             end=t == len(images) - 1)
        if t % check_every == 0:  # to the host at once (a sync on a GPU: hence --check-every there)
            checked[t] = prob.float().cpu()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - tic) / (len(images) - warmup)
    memory = (torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda"
              else current_memory_mib(device))
    return seconds, memory, checked


def agreement(probs: dict, reference: dict) -> tuple[float, float]:
    """(max |dprob|, argmax agreement in %) over the frames both checked."""
    frames = sorted(set(probs) & set(reference))
    diff = max((probs[t] - reference[t]).abs().max().item() for t in frames)
    agree = np.mean([(probs[t].argmax(0) == reference[t].argmax(0)).float().mean().item() for t in frames])
    return diff, 100 * agree


def official_run(repo: str, images, masks, device, args, amp: bool):
    from parity_xmem_network import import_official

    official_xmem, _, _ = import_official(repo)
    sys.path.insert(0, repo)
    from inference.inference_core import InferenceCore as OfficialCore

    net = official_xmem(dict(DIMS)).eval()
    net.load_state_dict(seeded_state(net.state_dict(), args.seed))
    net = net.to(device)
    with torch.no_grad():
        core = OfficialCore(net, official_config(InferenceConfig(size=-1)))
        return timed_loop(core, images, masks, device, args.warmup, args.check_every, amp=amp, official=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--height", type=int, help="default 240 on a CPU, 480 on a GPU")
    parser.add_argument("--width", type=int, help="default 427 on a CPU, 854 on a GPU")
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--frames", type=int, help="frames a run (default 40 on a CPU, 300 on a GPU)")
    parser.add_argument("--warmup", type=int, help="untimed first frames (default 5 on a CPU, 30 on a GPU)")
    parser.add_argument("--check-every", type=int, default=1, help="keep every k-th frame for the agreement figures")
    parser.add_argument("--networks", default=",".join(NETWORKS), help=f"comma-separated, from {', '.join(NETWORKS)}")
    parser.add_argument("--modes", help="comma-separated modes (default CPU: fp32,fp32+channels-last,"
                                        "amp+channels-last; GPU: fp32,amp,amp+channels-last,amp+channels-last+compile)")
    parser.add_argument("--xmem-repo", help="a checkout of the official XMem (MIT), for its evaluation loop")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trained", action="store_true",
                        help="small networks from the trained-network cache (qmvos_lab.zoo), for meaningful agreement")
    parser.add_argument("--csv", help="write the table here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    gpu = device.type == "cuda"
    height, width = args.height or (480 if gpu else 240), args.width or (854 if gpu else 427)
    frames = args.frames or (300 if gpu else 40)
    args.warmup = args.warmup if args.warmup is not None else (30 if gpu else 5)
    modes = (args.modes or ("fp32,amp,amp+channels-last,amp+channels-last+compile" if gpu
                            else "fp32,fp32+channels-last,amp+channels-last")).split(",")
    modes = ["fp32"] + [m for m in modes if m != "fp32"]  # each network's reference runs first
    networks = args.networks.split(",")
    unknown = sorted(set(networks) - set(NETWORKS))
    if unknown:
        raise SystemExit(f"--networks: unknown {unknown}; choose from {', '.join(NETWORKS)}")
    switches = {mode: parse_mode(mode) for mode in modes}
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    images, masks = clip(frames, height, width, args.objects, device)
    where = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}; torch {torch.__version__}; {width}x{height}, {args.objects} objects, "
          f"{frames} frames ({args.warmup} untimed)")

    rows = []

    def write_table() -> None:  # after every run, so a run cut short keeps what it measured
        if args.csv:
            write_csv(summarise(rows, gpu), Path(args.csv))

    if args.xmem_repo:
        official_modes = [("fp32", False)] + ([("amp (fp16)", True)] if gpu else [])
        for mode, amp in official_modes:
            seconds, memory, probs = official_run(args.xmem_repo, images, masks, device, args, amp)
            rows.append({"network": "official XMem", "mode": mode, "seconds": seconds, "memory_mib": memory,
                         "_probs": probs})
            print(f"  official XMem {mode}: {1 / seconds:.2f} FPS", flush=True)
            write_table()
    for name in networks:
        reference = None  # this network's fp32 run (modes start with fp32)
        for mode in modes:
            network = make_network(name, args.seed, args.trained).to(device)
            network = prepare_network(network, channels_last=switches[mode]["channels_last"],
                                      compile=switches[mode]["compile"])
            core = InferenceCore(network, InferenceConfig(size=-1))
            seconds, memory, probs = timed_loop(core, images, masks, device, args.warmup, args.check_every,
                                                amp=switches[mode]["amp"])
            reference = probs if mode == "fp32" else reference
            rows.append({"network": name, "mode": mode, "seconds": seconds, "memory_mib": memory, "_probs": probs,
                         "_reference": reference})
            print(f"  {name} {mode}: {1 / seconds:.2f} FPS", flush=True)
            write_table()

    frame = summarise(rows, gpu)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"(paper, Table 3a: XMem {PAPER_FPS['xmem']} FPS, QMVOS {PAPER_FPS['qmvos']} FPS on their GPU; "
          f"vs_official = official seconds a frame / ours, against the official "
          f"{'AMP' if gpu else 'fp32'} loop; agreement against our fp32 run of the same network)")
    if args.csv:
        print(f"wrote {args.csv}")


def summarise(rows: list[dict], gpu: bool) -> pd.DataFrame:
    """The printed table: one row per run, with ratios and agreement figures."""
    official_ref = next((r for r in rows if r["network"] == "official XMem"
                         and r["mode"] == ("amp (fp16)" if gpu else "fp32")), None)
    xmem_fp32 = next((r["_probs"] for r in rows if r["network"] == "xmem" and r["mode"] == "fp32"), None)
    table = []
    for r in rows:
        row = {"network": r["network"], "mode": r["mode"], "fps": 1 / r["seconds"],
               "ms_per_frame": 1000 * r["seconds"]}
        base = not r["network"].endswith("-small")  # the official network is the base size
        row["vs_official"] = official_ref["seconds"] / r["seconds"] if official_ref and base else float("nan")
        partner = r["network"].replace("qmvos", "xmem") if r["network"].startswith("qmvos") else None
        twin = next((x for x in rows if x["network"] == partner and x["mode"] == r["mode"]), None)
        row["qmvos_over_xmem_time"] = r["seconds"] / twin["seconds"] if twin else float("nan")
        row["memory_mib"] = r["memory_mib"]
        reference = r["_reference"] if "_reference" in r else xmem_fp32  # the official loop: our fp32 XMem
        row["max_abs_dprob"], row["argmax_agreement_pct"] = (agreement(r["_probs"], reference)
                                                             if reference is not None else (float("nan"),) * 2)
        table.append(row)
    return pd.DataFrame(table)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically (the kit's temporary file, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        frame.to_csv(partial, index=False)


if __name__ == "__main__":
    main()
