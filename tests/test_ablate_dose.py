"""The dose-response (ablate/dose.py): its cells, the gaps and trends against a hand computation,
stored scores read without training or evaluating, and the command line's tables, figure and errors."""

import dataclasses
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from qmvos_lab import ablate, zoo
from qmvos_lab.ablate import dose, run, specs
from qmvos_lab.data.synthetic import SPLITS
from qmvos_lab.errors import UserError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache whose runs resolve "auto" to fp32 without timing this CPU (cpu-tiny would time it)."""
    monkeypatch.setenv("QMVOS_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QMVOS_LAB_SMOKE", raising=False)
    def fp32(config, cache=None, **kwargs):
        return dataclasses.replace(config, amp=bool(config.amp), channels_last=bool(config.channels_last))

    monkeypatch.setattr(zoo, "resolve_fast_path", fp32)
    monkeypatch.setattr(specs, "resolve_fast_path", fp32)  # the plan decides once, for its workers
    return tmp_path / "cache"


def test_cells_sweep_one_knob_each_on_scenes_no_other_split_uses():
    cells = dose.cells((0.0, 0.8), (1, 6), videos=3, length=4)
    assert [(c.axis, c.level) for c in cells] == [("similarity", 0.0), ("similarity", 0.8), ("objects", 1),
                                                  ("objects", 6)]
    knobs = [dict(c.eval_set.overrides) for c in cells]
    assert [(k["num_objects"], k["similarity"]) for k in knobs] == [(dose.AT_COUNT, 0.0), (dose.AT_COUNT, 0.8),
                                                                   (1, dose.AT_SIMILARITY), (6, dose.AT_SIMILARITY)]
    assert all(k["length"] == 4 and c.eval_set.videos == 3 for k, c in zip(knobs, cells))
    assert len({c.eval_set.key() for c in cells}) == 4  # each cell's scores are stored under a key of its own
    spec = SPLITS[dose.DOSE_SPLIT]
    others = [range(s.seed, s.seed + s.num_videos) for name, s in SPLITS.items() if name != dose.DOSE_SPLIT]
    assert not any(set(range(spec.seed, spec.seed + spec.num_videos)) & set(r) for r in others)
    videos = [ablate.eval_set.eval_videos(c.eval_set) for c in cells]
    assert [v[0].labels.max() for v in videos] == [4, 4, 1, 6]
    assert len({v[1].name for v in videos}) == 1  # video i of every cell is drawn from the same seed ...
    assert not np.array_equal(videos[0][1].frames, videos[1][1].frames)  # ... with the cell's own knobs


@pytest.mark.parametrize("similarities, counts, videos, match", [
    ((1.5,), (1,), 2, "similarity 1.5 is outside"),
    ((0.5,), (0,), 2, "object count 0"),
    ((0.5,), (2.5,), 2, "object count 2.5"),
    ((0.5,), (2,), 0, "videos per cell must be positive"),
    ((0.5, 0.5), (2,), 2, "a similarity is given twice"),
    ((0.5,), (2, 4, 2), 2, "an object count is given twice"),
])
def test_bad_levels_get_one_line_errors(similarities, counts, videos, match):
    with pytest.raises(UserError, match=match) as error:
        dose.cells(similarities, counts, videos)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="at least 3 frames") as error:
        dose.cells((0.5,), (2,), 2, length=2)
    assert "\n" not in str(error.value)


def known_table(gap_low=0.05, growth=0.02, videos=6, seeds=3) -> pd.DataFrame:
    """qmvos / xmem x seeds x videos at two levels of each axis; per video v, xmem scores
    0.4 + 0.02 v, qmvos adds gap_low + 0.01 (v % 3) at the first level and growth more at the second."""
    rows = []
    for axis, levels in (("similarity", (0.0, 0.9)), ("objects", (1, 6))):
        for step, level in enumerate(levels):
            for seed, v in itertools.product(range(seeds), range(videos)):
                base = 0.4 + 0.02 * v + 0.003 * seed
                gap = gap_low + 0.01 * (v % 3) + growth * step * (1 + 0.5 * (v % 2))
                for variant, jf in (("xmem", base), ("qmvos", base + gap)):
                    rows.append({"axis": axis, "level": level, "variant": variant, "seed": seed,
                                 "video": f"synthetic-dose-{v:03d}", "J&F": jf, "copy_J&F": 0.3})
    return pd.DataFrame(rows)


def test_gaps_and_trends_match_a_hand_computation():
    table = known_table()
    out = dose.gaps(table)
    assert list(out["row"]) == ["cell"] * 4 + ["trend"] * 2
    v = np.arange(6)
    first = 0.05 + 0.01 * (v % 3)  # the per-video gap at each axis' first level
    second = first + 0.02 * (1 + 0.5 * (v % 2))
    cells = out[out["row"] == "cell"].set_index(["axis", "level"])
    assert cells.loc[("similarity", 0.0), "gap"] == pytest.approx(first.mean())
    assert cells.loc[("objects", 6), "gap"] == pytest.approx(second.mean())
    assert cells.loc[("objects", 1), "qmvos"] == pytest.approx((0.4 + 0.02 * v + 0.003 + first).mean())
    assert cells.loc[("objects", 1), "copy"] == pytest.approx(0.3)
    # all 6 per-video gaps positive: the exact sign-flip p is 2 / 2^6
    assert cells["p_value"].tolist() == pytest.approx([2 / 64] * 4)
    trends = out[out["row"] == "trend"].set_index("axis")
    assert trends.loc["similarity", "gap"] == pytest.approx((second - first).mean())
    assert trends.loc["similarity", "level"] == "0.9 vs 0"
    # Holm over the 6 rows: the smallest p times 6, then the running maximum
    p = out["p_value"].to_numpy()
    order = np.argsort(p, kind="stable")
    expected = np.minimum(1, np.maximum.accumulate((6 - np.arange(6)) * p[order]))
    assert out["p_holm"].to_numpy()[order] == pytest.approx(expected)
    assert out["p_holm"].tolist() == pytest.approx([6 * 2 / 64] * 6)
    # 6 videos over 6 rows: the smallest Holm p is 6 x 2 / 2^6 = 0.19, so no row can back a verdict
    assert out["verdict"].str.startswith("not decidable: 6 videos cannot reach Holm p < 0.05 over 6 rows").all()


def test_a_clear_positive_gap_reproduces_and_a_clear_negative_one_contradicts():
    more = known_table(videos=12)
    verdicts = dose.gaps(more)["verdict"].tolist()
    assert verdicts == ["reproduces"] * 6
    worse = dose.gaps(known_table(gap_low=-0.08, growth=-0.02, videos=12))["verdict"].tolist()
    assert worse == ["contradicts"] * 6
    assert isinstance(dose.gap_figure(dose.gaps(more)), Figure)
    text = dose.format_gaps(dose.gaps(more))
    assert "similarity trend (0.9 vs 0)" in text and "Holm" in text


def stored(spec, jf):
    """Make `spec` look finished: a checkpoint file and its scores, without training."""
    spec.entry.folder.mkdir(parents=True, exist_ok=True)
    spec.entry.checkpoint.write_bytes(b"x")
    rows = [{"video": f"synthetic-dose-{v:03d}", "objects": 1, "J": jf(v), "F": jf(v), "J&F": jf(v),
             "copy_J&F": 0.2} for v in range(spec.eval_set.videos)]
    spec.result_path.write_text(json.dumps({"rows": rows, "info": {"preset": "cpu-tiny", "iterations": 3}}))


def store_all(cells, seeds, gap, names=("xmem", "qmvos")):
    """Stored scores for both variants in every cell; the second of `names` scores `gap` more."""
    for cell in cells:
        for spec in ablate.plan(list(names), seeds, "cpu-tiny", cell.eval_set, smoke=False):
            shift = gap if spec.variant.name == names[1] else 0.0
            stored(spec, lambda v, s=shift, seed=spec.seed: 0.3 + 0.01 * v + 0.002 * seed + s)


def no_training(*args, **kwargs):
    raise AssertionError("stored scores must be read, not made again")


def test_stored_scores_are_read_without_training_or_evaluating(cache, monkeypatch):
    cells = dose.cells((0.0, 0.9), (1, 2), videos=5, length=4)
    store_all(cells, [0, 1], gap=0.05)
    monkeypatch.setattr(zoo, "train_entry", no_training)
    monkeypatch.setattr(run, "evaluate", no_training)
    table = dose.run_dose_response(seeds=[0, 1], similarities=(0.0, 0.9), counts=(1, 2), videos=5, length=4,
                                   smoke=False, progress=False)
    assert list(table.columns[:4]) == ["axis", "level", "num_objects", "similarity"]
    assert "objects" in table  # the runner's count of annotated objects stays
    assert len(table) == 4 * 2 * 2 * 5  # cells x variants x seeds x videos
    out = dose.gaps(table)
    assert out.loc[out["row"] == "cell", "gap"].tolist() == pytest.approx([0.05] * 4)
    assert out.loc[out["row"] == "trend", "gap"].tolist() == pytest.approx([0.0, 0.0])
    with pytest.raises(UserError, match="compares two variants"):
        dose.run_dose_response("xmem", "xmem", progress=False)


def test_the_command_line_writes_the_tables_and_the_figure(cache, monkeypatch, tmp_path, capsys):
    from qmvos_lab.cli import main

    cells = dose.cells((0.0, 0.9), (1, 2), videos=5, length=4)
    store_all(cells, [0, 1, 2], gap=0.04)
    monkeypatch.setattr(zoo, "train_entry", no_training)
    monkeypatch.setattr(run, "evaluate", no_training)
    code = main(["dose-response", "--seeds", "0,1,2", "--similarities", "0,0.9", "--counts", "1,2", "--videos", "5",
                 "--length", "4", "--output", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "similarity 0.9" in printed and "objects trend (2 vs 1)" in printed
    gaps = pd.read_csv(tmp_path / "out" / "dose_gaps.csv")
    assert gaps["gap"].iloc[:4].tolist() == pytest.approx([0.04] * 4)
    assert len(pd.read_csv(tmp_path / "out" / "dose_runs.csv")) == 4 * 2 * 3 * 5
    assert (tmp_path / "out" / "dose_response.png").stat().st_size > 0


@pytest.mark.parametrize("args, match", [
    (["--similarities", "0,high"], "--similarities '0,high': expected comma-separated numbers"),
    (["--counts", "1,2.5"], "--counts '1,2.5': expected comma-separated numbers"),
    (["--similarities", "0,2"], "similarity 2.0 is outside"),
    (["--variant", "qmvos-huge"], "unknown variant 'qmvos-huge'"),
])
def test_bad_levels_and_names_through_the_command_line(cache, tmp_path, capsys, args, match):
    from qmvos_lab.cli import main

    assert main(["dose-response", "--output", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_pair_the_paper_does_not_compare_has_no_direction(cache, monkeypatch, tmp_path, capsys):
    from qmvos_lab.cli import main

    cells = dose.cells((0.0, 0.9), (1, 2), videos=12, length=4)
    store_all(cells, [0, 1, 2], gap=-0.03, names=("qmvos", "no-interaction"))
    monkeypatch.setattr(zoo, "train_entry", no_training)
    monkeypatch.setattr(run, "evaluate", no_training)
    assert dose.direction("qmvos", "xmem") == 1 and dose.direction("no-interaction", "qmvos") is None
    code = main(["dose-response", "--variant", "no-interaction", "--reference", "qmvos", "--seeds", "0,1,2",
                 "--similarities", "0,0.9", "--counts", "1,2", "--videos", "12", "--length", "4",
                 "--output", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "no-interaction 0." in printed and "no paper claim for this pair" in printed
    gaps = pd.read_csv(tmp_path / "out" / "dose_gaps.csv")
    assert gaps["gap"].iloc[:4].tolist() == pytest.approx([-0.03] * 4)
    # every video 0.03 lower in every seed: the cells differ (no direction to reproduce); the trends are 0
    assert gaps["verdict"].iloc[:4].tolist() == ["differs"] * 4
    assert gaps["verdict"].iloc[4:].str.startswith(("inconclusive", "not decidable")).all()
