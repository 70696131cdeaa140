"""Each plot returns a Figure with the promised axes, images, lines and colour scales."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from qmvos_lab import viz
from qmvos_lab.errors import UserError

RNG = np.random.default_rng(0)


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def frames(t=5, h=24, w=32):
    return RNG.integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def labels(t=5, h=24, w=32):
    return RNG.integers(0, 3, (t, h, w)).astype(np.uint8)


def softmax_cross(nq=2, heads=3, no=2, h=4, w=5):
    """Nq x heads x No x h x w, each (query, head) row a distribution over objects and positions."""
    logits = torch.randn(nq, heads, no * h * w, generator=torch.Generator().manual_seed(0))
    return logits.softmax(-1).reshape(nq, heads, no, h, w)


def test_show_frames_bands_of_ground_truth_and_prediction_rows():
    fig = viz.show_frames(frames(5), labels(5), torch.as_tensor(labels(5)), columns=3)
    assert isinstance(fig, Figure)
    axes = image_axes(fig)
    assert len(fig.axes) == len(axes) == 10  # 2 bands x 2 rows x 3 columns, minus 2 unused
    assert [ax.get_title() for ax in axes if ax.get_title()] == [f"frame {t}" for t in range(5)]
    assert {ax.get_ylabel() for ax in axes} == {"ground truth", "prediction", ""}


def test_show_frames_alone_from_torch_chw_floats_with_titles():
    chw = torch.rand(3, 3, 24, 32)  # T x 3 x H x W in [0, 1]
    fig = viz.show_frames(chw, titles=["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    assert fig.axes[0].images[0].get_array().shape == (24, 32, 3)
    with pytest.raises(UserError, match="masks"):
        viz.show_frames(frames(3), ground_truth=labels(2))


def test_show_heatmaps_grid_shares_one_scale_and_colorbar():
    m = RNG.random((2, 3, 4, 5)).astype(np.float32)
    fig = viz.show_heatmaps(m, row_titles=["r0", "r1"], column_titles=["a", "b", "c"])
    axes = image_axes(fig)
    assert len(axes) == 6 and len(fig.axes) == 7  # + the colour bar
    assert {ax.images[0].get_clim() for ax in axes} == {(float(m.min()), float(m.max()))}
    assert [ax.get_title() for ax in axes[:3]] == ["a", "b", "c"]
    assert [axes[0].get_ylabel(), axes[3].get_ylabel()] == ["r0", "r1"]
    separate = viz.show_heatmaps(m, shared_scale=False)
    assert len(separate.axes) == 6 and len({ax.images[0].get_clim() for ax in separate.axes}) == 6
    assert len(image_axes(viz.show_heatmaps(torch.rand(4, 4)))) == 1


def test_affinity_over_memory_marks_the_query_pixel_over_memory_frames():
    affinity = np.zeros((3, 4, 5), np.float32)  # T_mem x h x w, top-k: a few non-zero weights
    affinity[0, 1, 2], affinity[2, 3, 4], affinity[2, 0, 0] = 0.5, 0.3, 0.2
    fig = viz.affinity_over_memory(torch.as_tensor(affinity), frames(3, 32, 40), query_pixel=(1, 2),
                                   query_frame=frames(1, 32, 40)[0])
    query_ax, *memory_axes = image_axes(fig)
    assert len(memory_axes) == 3 and len(fig.axes) == 5  # query + 3 memory + colour bar
    assert all(len(ax.images) == 2 for ax in memory_axes)  # the frame, then the upsampled map
    assert {ax.images[1].get_clim() for ax in memory_axes} == {(0.0, 0.5)}
    assert memory_axes[0].images[1].get_array().shape == (32, 40)
    assert [ax.get_title().split("\n")[1] for ax in memory_axes] == ["weight 0.50", "weight 0.00", "weight 0.50"]
    (marker,) = query_ax.lines
    x, y = marker.get_xdata()[0], marker.get_ydata()[0]  # the cell's centre, in frame pixels
    assert (x, y) == pytest.approx((2.5 * 40 / 5 - 0.5, 1.5 * 32 / 4 - 0.5))
    assert "(1, 2)" in query_ax.get_title()
    assert len(image_axes(viz.affinity_over_memory(affinity))) == 3


def test_readout_channels_grid():
    readout = torch.randn(1, 20, 4, 6)  # 1 x C x h x w
    fig = viz.readout_channels(readout, columns=8)
    assert len(fig.axes) == len(image_axes(fig)) == 20
    assert fig.axes[5].get_title() == "channel 5"
    fig = viz.readout_channels(readout[0], channels=[3, 7], shared_scale=True)
    assert [ax.get_title() for ax in image_axes(fig)] == ["channel 3", "channel 7"] and len(fig.axes) == 3
    with pytest.raises(UserError, match="channels"):
        viz.readout_channels(readout, channels=[20])


def test_attention_mass_rows_sum_to_one_per_head_numpy_and_torch():
    cross = softmax_cross()
    mass = viz.attention_mass(cross)
    assert isinstance(mass, torch.Tensor) and mass.shape == (2, 3, 2)
    torch.testing.assert_close(mass.sum(-1), torch.ones(2, 3))
    mass_np = viz.attention_mass(cross.numpy())
    assert isinstance(mass_np, np.ndarray)
    np.testing.assert_allclose(mass_np.sum(-1), 1, rtol=1e-5)


def test_attention_mass_matrix_annotates_every_cell_and_reuses_ax():
    mass = viz.attention_mass(softmax_cross(nq=3))  # 3 x heads x 2
    fig = viz.attention_mass_matrix(mass, object_labels=["bg?", "cat"])
    ax = image_axes(fig)[0]
    assert len(ax.texts) == 6 and "mean over heads" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["bg?", "cat"]
    assert ax.texts[0].get_text() == f"{mass.mean(1)[0, 0]:.2f}"
    other = Figure()
    target = other.add_subplot()
    assert viz.attention_mass_matrix(mass[:, 0], ax=target) is other


def test_cross_attention_heads_of_one_query_share_one_scale_over_the_frame():
    cross = softmax_cross()
    fig = viz.cross_attention(cross, frame=frames(1, 16, 20)[0], query=1, object_labels=["a", "b"])
    axes = image_axes(fig)
    assert len(axes) == 6  # 3 heads x 2 objects
    assert [ax.get_ylabel() for ax in axes[::2]] == ["query 1, head 0", "query 1, head 1", "query 1, head 2"]
    heat = [ax.images[-1] for ax in axes]
    assert {im.get_clim() for im in heat} == {(0.0, float(cross[1].max()))}
    assert heat[0].get_array().shape == (16, 20)
    mean = viz.cross_attention(cross[None], heads="mean")  # a batch of 1 is accepted
    assert len(image_axes(mean)) == 4 and image_axes(mean)[2].get_ylabel() == "query 1"
    assert len(image_axes(viz.cross_attention(cross))) == 12  # every query's every head
    with pytest.raises(UserError, match="heads"):
        viz.cross_attention(cross, heads="max")


def test_attention_figure_returns_a_figure_from_a_frame_result():
    result = SimpleNamespace(attention={"cross": softmax_cross()[None]}, internal_ids=[1, 2])
    fig = viz.attention_figure(frames(1, 16, 20)[0], result)
    assert len(image_axes(fig)) == 4 and image_axes(fig)[1].get_title() == "readout of object 2"
    assert viz.attention_per_object(result.attention["cross"], (16, 20)).shape == (2, 2, 16, 20)
    with pytest.raises(UserError, match="no recorded attention"):
        viz.attention_figure(frames(1)[0], SimpleNamespace(attention=None, internal_ids=None))


def test_memory_and_metric_over_time_draw_lines_and_events():
    events = viz.events_by_name([["memory frame"], [], ["memory frame", "deep update"], []])
    assert events == {"memory frame": [0, 2], "deep update": [2]}
    traced = [{"memory_frame": True, "objects_added": [1], "segmented": False}, {"memory_frame": False,
              "objects_added": [], "segmented": True}, {"memory_frame": True, "objects_added": [2], "segmented": True}]
    assert viz.events_by_name(traced, frames=[4, 5, 6], names=["memory_frame", "objects_added", "consolidation"]) == {
        "memory_frame": [4, 6], "objects_added": [4, 6], "consolidation": []}
    fig = viz.memory_over_time(range(4), [10, 10, 20, 20], torch.tensor([0, 0, 0, 5]), events)
    (ax,) = fig.axes
    assert len(ax.lines) == 2 and len(ax.collections) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["working memory", "long-term memory",
                                                                   "memory frame", "deep update"]
    host = Figure()
    target = host.add_subplot()
    assert viz.metric_over_time(range(4), {"IoU": [0.1, 0.5, 0.6, 0.7], "entropy": np.ones(4)}, events,
                                ax=target) is host
    assert len(target.lines) == 2 and len(target.collections) == 2
    with pytest.raises(UserError, match="3 values for 4 frames"):
        viz.metric_over_time(range(4), {"IoU": [1, 2, 3]})


def test_loss_curves_from_records_and_from_a_run_folder(tmp_path):
    records = [{"iteration": i, "loss": 1 / i, "ce": 0.5 / i, "dice": 0.4, "lr": 1e-4} for i in range(1, 6)]
    fig = viz.loss_curves(records)
    assert [line.get_label() for line in fig.axes[0].lines] == ["loss", "ce", "dice"]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    fig = viz.loss_curves(tmp_path, terms=("dice", "missing"))
    assert [line.get_label() for line in fig.axes[0].lines] == ["dice"]
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), range(1, 6))
    with pytest.raises(UserError, match="none of"):
        viz.loss_curves(records, terms=("l1",))
    with pytest.raises(UserError, match="missing or empty"):
        viz.loss_curves(tmp_path / "nowhere")


def jf_results():
    rows = [{"video": f"v{v}", "variant": variant, "seed": seed, "J": 0.5 + 0.1 * v, "F": 0.6 + 0.05 * seed}
            for v in range(3) for variant in ("xmem", "qmvos") for seed in range(2)]
    return pd.DataFrame(rows)


def test_jf_per_video_and_per_variant_use_seaborn(monkeypatch):
    import seaborn

    calls = []
    for name in ("barplot", "pointplot", "stripplot"):
        original = getattr(seaborn, name)
        monkeypatch.setattr(seaborn, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    table = jf_results()  # J&F is computed from J and F
    fig = viz.jf_per_video(table)
    ax = fig.axes[0]
    assert len([p for p in ax.patches if p.get_height() > 0]) == 6  # 3 videos x 2 variants
    assert [t.get_text() for t in ax.get_xticklabels()] == ["v0", "v1", "v2"]
    fig = viz.jf_per_variant(table)  # variants in the table's order
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["xmem", "qmvos"]
    fig = viz.jf_per_variant(table, order=["qmvos", "xmem"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["qmvos", "xmem"]
    assert "2 seeds" in fig.axes[0].get_title()
    assert "95% CI" in viz.jf_per_variant(table.drop(columns="seed")).axes[0].get_title()
    assert calls == ["barplot", "stripplot", "pointplot", "stripplot", "pointplot", "pointplot"]
    with pytest.raises(UserError, match="lacks column"):
        viz.jf_per_variant(table.drop(columns="variant"))


# ---------------------------------------------------------------- the backend and pyplot stay untouched
NOT_PLOTS = {"ATTENTION_CMAP", "FEATURE_CMAP", "VideoWriter", "animate_frames", "animation_of", "attention_mass",
             "attention_per_object",
             "events_by_name", "overlay", "palette_colours", "save_figure", "to_numpy", "write_video",
             "load_recording", "open_explorer", "save_recording",
             "forward_shapes"}  # the diagram's shapes, not a plot: tests/viz/test_diagram.py  # traces on disk: tests/viz/test_trace_io.py


def small_qmvos():
    from qmvos_lab.ablations import model_config
    from qmvos_lab.model import build_network

    torch.manual_seed(0)
    return build_network(model_config("qmvos", "small")).eval()


def every_plot():
    """One call of each public plot, on small data."""
    cross = softmax_cross()
    result = type("Result", (), {"attention": {"cross": cross[None]}, "internal_ids": [1, 2]})()
    records = [{"iteration": i, "loss": 1 / i, "ce": 0.5 / i, "dice": 0.4} for i in range(1, 4)]
    return {
        "show_frames": lambda: viz.show_frames(frames(3), labels(3), labels(3), columns=2),
        "show_heatmaps": lambda: viz.show_heatmaps(torch.rand(2, 2, 3, 3)),
        "affinity_over_memory": lambda: viz.affinity_over_memory(torch.rand(2, 3, 4), frames(2), (1, 1), frames(1)[0]),
        "readout_channels": lambda: viz.readout_channels(torch.randn(10, 3, 4), columns=4, shared_scale=True),
        "cross_attention": lambda: viz.cross_attention(cross, frames(1)[0], query=0),
        "attention_figure": lambda: viz.attention_figure(frames(1)[0], result),
        "attention_mass_matrix": lambda: viz.attention_mass_matrix(viz.attention_mass(cross)),
        "memory_over_time": lambda: viz.memory_over_time(range(3), [1, 2, 3], [0, 0, 2], {"consolidation": [2]}),
        "metric_over_time": lambda: viz.metric_over_time(range(3), {"J": np.ones(3)}, {"memory frame": [0]}),
        "loss_curves": lambda: viz.loss_curves(records),
        "jf_per_video": lambda: viz.jf_per_video(jf_results()),
        "jf_per_variant": lambda: viz.jf_per_variant(jf_results()),
        "architecture": lambda: viz.architecture(small_qmvos(), 32, 48),
    }


def test_every_public_name_resolves_and_every_plot_is_called_here():
    assert all(getattr(viz, name) is not None for name in viz.__all__)
    assert set(viz.__all__) - NOT_PLOTS == set(every_plot())


def test_plots_keep_the_backend_and_pyplot_state(monkeypatch):
    backend, open_figures = matplotlib.get_backend(), plt.get_fignums()

    def forbidden(*args, **kwargs):
        raise AssertionError("the library must not call matplotlib.use or plt.show")

    monkeypatch.setattr(matplotlib, "use", forbidden)
    monkeypatch.setattr(plt, "show", forbidden)
    for name, plot in every_plot().items():
        fig = plot()
        assert isinstance(fig, Figure), name
        fig.savefig(io.BytesIO(), format="png", dpi=30)  # lays out and draws every artist
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == open_figures  # nothing registered with pyplot: nothing to close


def test_plots_that_take_an_ax_draw_on_it_and_return_its_figure():
    records = [{"iteration": i, "loss": 1 / i} for i in range(1, 4)]
    calls = {
        "memory_over_time": lambda ax: viz.memory_over_time(range(3), [1, 2, 3], [0, 0, 2], ax=ax),
        "metric_over_time": lambda ax: viz.metric_over_time(range(3), {"J": np.ones(3)}, ax=ax),
        "loss_curves": lambda ax: viz.loss_curves(records, ax=ax),
        "attention_mass_matrix": lambda ax: viz.attention_mass_matrix(np.eye(2), ax=ax),
        "jf_per_video": lambda ax: viz.jf_per_video(jf_results(), ax=ax),
        "jf_per_variant": lambda ax: viz.jf_per_variant(jf_results(), ax=ax),
    }
    for name, plot in calls.items():
        host = Figure()
        ax = host.add_subplot()
        assert plot(ax) is host and (ax.lines or ax.images or ax.patches or ax.collections), name


def test_animations_are_self_contained_html_with_every_frame():
    html = viz.animate_frames(frames(3), fps=4, titles=["a", "b", "c"])
    assert html.count("data:image/png;base64") == 3 and "<script" in html
    with pytest.raises(ValueError, match="T x H x W x 3"):
        viz.animate_frames(np.zeros((3, 8, 8)))
