"""Events of a generated video, derived from its scene plan and label maps."""

import numpy as np
import pandas as pd
import pytest

from qmvos_lab.data.synthetic import SyntheticConfig, generate_video, plan_scene, rasterise
from qmvos_lab.data.synthetic_events import (EVENT_NAMES, alike_pairs, events_of, object_timeline,
                                             scene_events)

CONFIG = SyntheticConfig(num_objects=3, similarity=0.9, occlusion_rate=0.8, enter_prob=0.4, length=30)
SEED = 40  # the explorer notebook's video


@pytest.fixture(scope="module")
def video():
    return generate_video(CONFIG, SEED)


def test_timeline_counts_the_label_map_and_the_full_shapes(video):
    timeline = object_timeline(CONFIG, SEED, video.labels)
    plans = plan_scene(CONFIG, SEED)[-1]
    ys, xs = np.mgrid[:CONFIG.height, :CONFIG.width].astype(np.float64)
    for t in (0, 12, 29):
        for i, plan in enumerate(plans):
            assert timeline.visible[t, i] == (video.labels[t] == i + 1).sum()
            full = rasterise(plan, t, CONFIG, ys, xs)[0].sum() if t >= plan.enter else 0
            assert timeline.amodal[t, i] == full  # the windowed count equals the whole-frame one
    assert (timeline.visible <= timeline.amodal).all()
    hidden = timeline.occluded
    assert np.isnan(hidden[: video.first_frame[1], 1]).all()  # object 2 is not there before it enters
    t, i = 15, 2
    assert hidden[t, i] == pytest.approx(1 - timeline.visible[t, i] / timeline.amodal[t, i])


def test_events_of_the_notebook_video(video):
    events = scene_events(CONFIG, SEED, video.labels)
    assert list(events.columns) == ["frame", "event", "objects"] and set(events.event) <= set(EVENT_NAMES)
    assert events[events.event == "object enters"].values.tolist() == [[5, "object enters", (2,)]]
    assert video.first_frame == [0, 5, 0]
    hidden = object_timeline(CONFIG, SEED, video.labels).occluded
    for row in events[events.event.str.startswith("occlusion")].itertuples():
        (obj,) = row.objects
        now = hidden[row.frame, obj - 1] >= 0.5
        assert now == (row.event == "occlusion start")
        assert (hidden[row.frame - 1, obj - 1] >= 0.5) != now  # a crossing of the threshold
    starts = events[events.event == "occlusion start"].frame.tolist()
    ends = events[events.event == "occlusion end"].frame.tolist()
    assert len(starts) == len(ends) == 2 and all(s < e for s, e in zip(sorted(starts), sorted(ends)))
    close = events[events.event == "near-identical objects close"]
    assert set(close.objects) == {(1, 2)} and alike_pairs(plan_scene(CONFIG, SEED)[-1]) == [(0, 1)]
    assert close.frame.tolist() == list(range(10, 27))


def test_events_of_one_object_and_unrelated_looks():
    table = pd.DataFrame([(3, "occlusion start", (1,)), (3, "near-identical objects close", (1, 2)),
                          (4, "near-identical objects close", (1, 2)), (7, "occlusion end", (2,))],
                         columns=["frame", "event", "objects"])
    assert events_of(table, 1) == {"occlusion start": [3], "near-identical objects close": [3, 4]}
    assert events_of(table, 2) == {"near-identical objects close": [3, 4], "occlusion end": [7]}
    assert events_of(table)["occlusion end"] == [7]
    config = SyntheticConfig(num_objects=3, similarity=0.0, length=4)
    plans = plan_scene(config, 1)[-1]
    assert alike_pairs(plans, colour_distance=0.0) == []
    with pytest.raises(ValueError, match="labels"):
        object_timeline(config, 1, np.zeros((3, 4, 4), np.uint8))
