"""All heads of one query at a glance: small multiples of the QCIM cross-attention
(QMVOS Sec. 3.3, QMVOS Eq. 4) of one object query on one frame, a row per readout it attends to, a column per head, each map
on the frame (d2l's `show_heatmaps`, one colour scale for the whole grid)."""

from __future__ import annotations

from matplotlib.figure import Figure

from ..errors import UserError
from .heatmaps import show_heatmaps


def head_grid(explorer, frame: int | None = None, query: int | None = None) -> Figure:
    """The grid for the query of object `query` on `frame` of an `AttentionExplorer` (defaults: its
    current controls); rows: the readout of each object (or the F16 image features), columns: heads."""
    s = explorer.state
    frame = s["frame"] if frame is None else int(frame)
    query = s["query"] if query is None else query
    if not explorer.has_queries:
        raise UserError("head_grid: this recording has no queries (an XMem network); record a QMVOS network")
    if not 0 <= frame < explorer.num_frames:
        raise UserError(f"head_grid: frame {frame} is not one of the video's 0..{explorer.num_frames - 1}")
    cross, q = explorer.cross[frame], explorer.query_index(frame, query)
    if cross is None or q is None or q >= cross.shape[0]:
        raise UserError(f"head_grid: the query of object {query} has no cross-attention on frame {frame} (a frame "
                        "with only given masks, or before the object had a query); pick another frame")
    maps = explorer.geometry.upsample(cross[q].transpose(1, 0, 2, 3))  # No x heads x H x W
    sources = explorer.rec.object_ids[frame] if explorer.per_object else ["F16"]
    rows = [f"readout of\nobject {i}" if explorer.per_object else "F16 features" for i in sources[: len(maps)]]
    return show_heatmaps(maps, row_titles=rows, column_titles=[f"head {h}" for h in range(maps.shape[1])],
                         background=explorer.rec.frames[frame], colorbar_label="attention weight",
                         suptitle=f"QCIM cross-attention (QMVOS Eq. 4)\nquery of object {query}, frame {frame}")
