"""The mechanism study of issue 26: is QMVOS's attention object-specific, over training and across
variants? For every network of `mechanism.over_training.default_networks` (QMVOS-small at cpu-quick,
cpu-tiny and 4x cpu-tiny; no-interaction; qcim-f16; the qcim-identity remedy), each seed, each split:
the key mechanism metrics with an untrained network of the same config and uniform attention.

    python benchmarks/mechanism_study.py --output DIR [--seeds 0 1 2] [--long-seeds 0]
                                         [--splits synthetic-hard synthetic-val] [--videos 8]
                                         [--frames T] [--only qmvos,qcim-identity]

Networks come from the zoo cache (trained when missing, with the mechanism probe logging its curve;
the 4x run takes about 27 minutes a seed on 2 cores); metric tables are cached beside each network, so
a rerun prints in seconds. Prints per split a table of means [95 % two-stage interval over seeds and
videos], the baselines, and each variant's difference from QMVOS at the same preset; writes
DIR/study.csv (per video), DIR/summary.csv, DIR/curves.csv and DIR/mechanism_over_training_<split>.png.
QMVOS_LAB_SMOKE=1 trains 12-iteration networks (a smoke run of the script, not a result).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pandas as pd

from qmvos_lab.data.synthetic import SPLITS
from qmvos_lab.machine import cpu_line
from qmvos_lab.mechanism.over_training import (KEY_METRICS, default_networks, difference, study_summary,
                                               study_table, training_curves)
from qmvos_lab.viz.mechanism_plots import metrics_over_training


def cell(mean: float, low: float, high: float) -> str:
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def wide(summary: pd.DataFrame, split: str) -> pd.DataFrame:
    """Rows: each network (and its baselines), columns: the key metrics."""
    rows = summary[summary["split"] == split]
    rows = rows.assign(row=[label if kind == "trained" else f"  {kind} ({label})"
                            for label, kind in zip(rows["label"], rows["network"])],
                       column=[f"{a}: {m}" for a, m in zip(rows["attention"], rows["metric"])],
                       cell=[cell(*v) for v in zip(rows["mean"], rows["low"], rows["high"])])
    order = list(dict.fromkeys(rows["row"]))
    table = rows.pivot_table(index="row", columns="column", values="cell", aggfunc="first", sort=False)
    extra = rows.groupby("row", sort=False)[["iterations", "seeds", "videos"]].max()  # a metric may be NaN (qcim-f16)
    return extra.join(table).reindex(order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--long-seeds", type=int, nargs="*", default=[0],
                        help="seeds of the 4x run (none: leave it out)")
    parser.add_argument("--splits", nargs="+", default=["synthetic-hard", "synthetic-val"], choices=sorted(SPLITS))
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=None, help="shorten the videos to T frames (smoke runs)")
    parser.add_argument("--only", default=None, help="comma-separated variants (default: every network of the study)")
    args = parser.parse_args()

    networks = default_networks(args.long_seeds)
    if args.only:
        networks = [n for n in networks if n.variant in args.only.split(",")]
    print(cpu_line())
    with warnings.catch_warnings():  # scipy warns on degenerate resamples; the interval shows it
        warnings.simplefilter("ignore")
        table = study_table(networks, args.seeds, args.splits, args.videos, args.frames)
        summary = study_summary(table)
    curves = training_curves(networks, args.seeds)
    args.output.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output / "study.csv", index=False)
    summary.to_csv(args.output / "summary.csv", index=False)
    curves.to_csv(args.output / "curves.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 40):
        for split in args.splits:
            print(f"\n{split} ({args.videos} videos): mean over seeds and videos [95 % two-stage interval];"
                  " uniform attention gives 1 for the ratios, 0 for the preferences\n")
            print(wide(summary, split).to_string())
            print(f"\n{split}: each variant minus QMVOS at the same preset (trained networks; videos paired, "
                  "seeds resampled)\n")
            lines = []
            for spec in networks:
                reference = next((n for n in networks if n.variant == "qmvos" and n.preset == spec.preset
                                  and n.iterations is None), None)
                if spec.variant == "qmvos" or reference is None:
                    continue
                for attention, metric in KEY_METRICS:
                    diff, low, high = difference(table, spec.label, reference.label, split, attention, metric)
                    if diff == diff:  # not NaN (a metric the variant has)
                        lines.append((spec.label, f"{attention}: {metric}", f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"))
            if lines:
                print(pd.DataFrame(lines, columns=["network", "metric", "− qmvos [95 %]"]).to_string(index=False))
            fig = metrics_over_training(summary, KEY_METRICS, split, curves)
            fig.savefig(args.output / f"mechanism_over_training_{split}.png", dpi=110)
    print(f"\nwrote {args.output}/study.csv, summary.csv, curves.csv and the figures")


if __name__ == "__main__":
    main()
