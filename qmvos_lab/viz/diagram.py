"""The architecture of XMem / QMVOS as a diagram whose tensor shapes come from a real forward pass.

    shapes = forward_shapes(net, height=192, width=320, objects=2)   # {"F16": (1, 256, 12, 20), ...}
    architecture(net, height=192, width=320)                         # a Figure

One frame (t) is segmented from a memory holding one earlier frame (t - 1) with random masks: the
stages of the network (`encode_key`, `encode_value`, `read_memory`, QMVOS's `sim`, `segment`) are
called as the training pass calls them, and every tensor the diagram names is measured, so the
picture cannot drift from the code. QMVOS's parts are drawn in a second colour; for XMem they are
absent and its prediction conv is drawn instead.
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from ..model.qcim import serialise_readout


def shape_text(shape) -> str:
    return " x ".join(str(int(s)) for s in shape)


@torch.no_grad()
def forward_shapes(net, height: int = 192, width: int = 320, objects: int = 2, seed: int = 0) -> dict:
    """Run one frame through `net` (eval mode is not changed; no gradients) and return the shapes
    of the tensors of the diagram, in order. height and width must be multiples of 16."""
    if height % 16 or width % 16:
        raise ValueError(f"height and width must be multiples of 16, got {height} x {width}")
    generator = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    frames = torch.randn(1, 2, 3, height, width, generator=generator).to(device)  # frames t - 1 and t
    labels = torch.randint(0, objects + 1, (1, height, width), generator=generator).to(device)
    masks = torch.stack([labels == i for i in range(1, objects + 1)], 1).float()  # 1 x N x H x W

    key, shrinkage, selection, f16, f8, f4 = net.encode_key(frames)  # key: 1 x Ck x 2 x h x w
    hidden = torch.zeros(1, objects, net.hidden_dim, *key.shape[-2:], device=device)
    value, hidden = net.encode_value(frames[:, 0], f16[:, 0], hidden, masks)  # frame t - 1 into memory
    readout = net.read_memory(key[:, :, 1], selection[:, :, 1], key[:, :, :1], shrinkage[:, :, :1],
                              value.unsqueeze(3))  # 1 x N x Cv x h x w
    features = (f16[:, 1], f8[:, 1], f4[:, 1])
    shapes = {"frame": frames[:, 1].shape, "F16": f16[:, 1].shape, "F8": f8[:, 1].shape, "F4": f4[:, 1].shape,
              "key": key[:, :, 1].shape, "shrinkage": shrinkage[:, :, 1].shape, "selection": selection[:, :, 1].shape,
              "masks": masks.shape, "value": value.shape, "hidden": hidden.shape, "readout": readout.shape}
    queries = None
    if net.uses_queries:
        previous = (f16[:, 0], f8[:, 0], f4[:, 0])  # the queries of frame t come from frame t - 1
        shapes["F_fuse"] = net.sim_feature(*previous).shape
        queries = net.init_queries(previous, masks)
        shapes["queries"] = queries.shape
    g16, g8, g4 = net.decoder.decode(*features, hidden, readout)
    shapes.update({"g16": g16.shape, "g8": g8.shape, "g4": g4.shape})
    if net.uses_queries and getattr(net.decoder, "g16_proj", None) is not None:
        shapes["M"] = serialise_readout(net.decoder.g16_proj(g16)).shape
    out = net.segment(features, readout, hidden, queries=queries)
    if net.uses_queries:
        shapes["refined queries"] = out.queries.shape
    shapes["object logits"] = (*g4.shape[:2], *g4.shape[-2:])  # one map per object at stride 4, before x4
    shapes.update({"logits": out.logits.shape, "prob": out.prob.shape})
    return {name: tuple(int(s) for s in shape) for name, shape in shapes.items()}


XMEM_COLOUR, QMVOS_COLOUR = "#dbe8f5", "#f8e0c8"


def architecture(net, height: int = 192, width: int = 320, objects: int = 2, shapes: dict | None = None) -> Figure:
    """A block diagram of `net` (XMem or QMVOS) with the tensor shapes of one forward pass
    (`forward_shapes`; B = 1, N = `objects`). Blue: XMem's stages; orange: what QMVOS adds."""
    s = {k: shape_text(v) for k, v in (shapes or forward_shapes(net, height, width, objects)).items()}
    queries = net.uses_queries
    fig = Figure(figsize=(11, 8.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(-0.75, 1.75)
    ax.set_ylim(-0.6, 6.6)
    ax.set_axis_off()

    def box(x, y, title, lines, colour=XMEM_COLOUR):
        return ax.text(x, y, title + "\n" + "\n".join(lines), ha="center", va="center", fontsize=8,
                       bbox=dict(boxstyle="round,pad=0.4", fc=colour, ec="0.3"))

    def arrow(start, end, text="", dashed=False):  # from the bottom of `start` to the top of `end`
        ax.annotate("", xy=(0.5, 1.0), xycoords=end, xytext=(0.5, 0.0), textcoords=start,
                    arrowprops=dict(arrowstyle="->", color="0.25", lw=1.0, linestyle="--" if dashed else "-"))
        if text:
            (x0, y0), (x1, y1) = start.get_position(), end.get_position()
            ax.text((x0 + x1) / 2 + 0.04, (y0 + y1) / 2, text, fontsize=7, color="0.3", ha="left", va="center")

    frame = box(0, 6.1, "frame t", [s["frame"]])
    key_encoder = box(0, 5.0, "key encoder (ResNet)", [f"F16 {s['F16']}", f"F8  {s['F8']}", f"F4  {s['F4']}",
                                                      f"key {s['key']}, selection {s['selection']}"])
    read = box(0, 3.75, "memory reading (XMem Eq. 1-3)", [f"readout {s['readout']}",
                                                          f"memory: value {s['value']}"])
    decoder = box(0, 2.55, "decoder: fuse readout + sensory memory + F16, upsample",
                  [f"g16 {s['g16']}", f"g8  {s['g8']}", f"g4  {s['g4']}", f"sensory memory {s['hidden']}"])
    if queries:
        head = box(0, 1.35, "(XMem's prediction conv: removed)", ["logits = dynamic filters ->"], colour="0.93")
    else:
        head = box(0, 1.35, "prediction conv (3 x 3) on relu(g4)", [f"object logits {s['object logits']}, then x4"])
    masks = box(0, 0.2, "soft aggregation -> masks of frame t", [f"prob {s['prob']} (background first)"])
    value = box(-0.62, 2.0, "value encoder\n(ResNet-18)", ["frame + masks", f"-> value {s['value']}"])
    arrow(frame, key_encoder)
    arrow(key_encoder, read, "key, selection")
    arrow(read, decoder)
    arrow(decoder, head)
    arrow(head, masks)
    ax.annotate("", xy=(0.5, 0.0), xycoords=value, xytext=(0.0, 0.5), textcoords=masks,
                arrowprops=dict(arrowstyle="->", color="0.25", connectionstyle="angle,angleA=180,angleB=-90"))
    ax.annotate("", xy=(0.0, 0.5), xycoords=read, xytext=(0.5, 1.0), textcoords=value,
                arrowprops=dict(arrowstyle="->", color="0.25", connectionstyle="angle,angleA=90,angleB=180"))
    if queries:
        sim = box(1.15, 5.0, "SIM (QMVOS Sec. 3.2), on frame t - 1",
                  ["scale fusion (QMVOS Eq. 1)", f"F_fuse {s['F_fuse']}", "masked average pooling",
                   "interaction (QMVOS Eq. 2)", f"queries {s['queries']}"], QMVOS_COLOUR)
        qcim = box(1.15, 2.75, "QCIM (QMVOS Eq. 3-4)", ["self-attention, cross-attention to M, FFN",
                                                      f"M = serialised g16_proj(g16) {s['M']}" if "M" in s
                                                      else "content: F16 of frame t (Table 3d)",
                                                      f"refined queries {s['refined queries']}"], QMVOS_COLOUR)
        filters = box(1.15, 1.35, "dynamic filters (QMVOS Sec. 3.3)",
                      ["logit = <q_n, g4_n> (no bias, no scale)", f"object logits {s['object logits']}, then x4"],
                      QMVOS_COLOUR)
        arrow(sim, qcim, "queries")
        arrow(qcim, filters)
        ax.annotate("", xy=(0.0, 0.5), xycoords=qcim, xytext=(1.0, 0.5), textcoords=decoder,
                    arrowprops=dict(arrowstyle="->", color="0.25"))
        ax.annotate("", xy=(1.0, 0.5), xycoords=head, xytext=(0.0, 0.5), textcoords=filters,
                    arrowprops=dict(arrowstyle="->", color="0.25"))
        # masks of frame t -> the SIM, for frame t + 1: routed right of the QMVOS column
        route = dict(color="0.25", linestyle="--", lw=1.0)
        ax.annotate("", xy=(1.68, 0.2), xycoords="data", xytext=(1.0, 0.5), textcoords=masks,
                    arrowprops=dict(arrowstyle="-", **route))
        ax.plot([1.68, 1.68], [0.2, 5.0], **route)
        ax.annotate("", xy=(1.0, 0.5), xycoords=sim, xytext=(1.68, 5.0), textcoords="data",
                    arrowprops=dict(arrowstyle="->", **route))
        ax.text(0.95, 0.05, "masks of frame t -> the SIM's queries for frame t + 1", fontsize=7, color="0.3",
                va="center")
    name = "QMVOS" if queries else "XMem"
    ax.set_title(f"{name}: one frame from a memory of one frame; shapes measured on a {height} x {width} input, "
                 f"N = {objects} objects (B x N x C x h x w)", fontsize=9)
    return fig
