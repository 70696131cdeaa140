"""What the queries do (issue 26): the mechanism metrics of a cached zoo network with its
baselines, and the effect of each causal intervention on J&F.

    python benchmarks/mechanism.py [--network qmvos-small] [--preset cpu-tiny] [--seed 0]
                                   [--split synthetic-hard] [--videos 4] [--frames T] [--heads]
                                   [--all-metrics] [--no-interventions]

The network comes from the zoo cache (`qmvos_lab.zoo.trained`; trained once when missing, so
QMVOS_LAB_SMOKE=1 gives a 12-iteration network in seconds). Prints
  1. per attention and metric, the mean over videos (each the mean over its frames and queries,
     head mean) with a 95 % BCa interval, for the network, an untrained network of its config
     and uniform attention (qmvos_lab.mechanism.study);
  2. per intervention, ΔJ&F against the intact network on the same videos with the paired 95 %
     BCa interval and the sign-flip p (qmvos_lab.mechanism.effects).
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd

from qmvos_lab import zoo
from qmvos_lab.data.synthetic import SPLITS, split_videos
from qmvos_lab.mechanism import available_interventions, intervention_effects, summarise, with_baselines

KEY_METRICS = ("own-object mass", "own-object mass / share", "preference", "query-map cosine",
               "in-mask ratio / share", "entropy / uniform", "own weight / share")


def metric_table(summary: pd.DataFrame, all_metrics: bool = False) -> str:
    """One line per (attention, metric), one `mean [low, high]` column per network."""
    rows = summary if all_metrics else summary[summary["metric"].isin(KEY_METRICS)]
    cells = rows.assign(cell=[f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in
                              zip(rows["mean"], rows["low"], rows["high"])])
    wide = cells.pivot_table(index=["attention", "metric"], columns="network", values="cell", aggfunc="first",
                             sort=False)
    return wide.reindex(columns=[c for c in ("trained", "untrained", "uniform") if c in wide.columns]).to_string()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="qmvos-small", help="a zoo name (qmvos_lab.zoo.names())")
    parser.add_argument("--preset", default=zoo.DEFAULT_PRESET)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="synthetic-hard", choices=sorted(SPLITS))
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=None, help="shorten the videos to T frames (smoke runs)")
    parser.add_argument("--heads", action="store_true", help="also knock out each QCIM cross-attention head")
    parser.add_argument("--all-metrics", action="store_true", help="print every metric, not the key ones")
    parser.add_argument("--no-interventions", action="store_true")
    args = parser.parse_args()

    network = zoo.trained(args.network, args.preset, args.seed, progress=False)
    videos = list(split_videos(args.split, args.videos, **({} if args.frames is None else {"length": args.frames})))
    iterations = zoo.training_config(args.network, args.preset, args.seed, smoke=zoo.smoke_mode()).iterations
    print(f"{args.network} ({args.preset}, seed {args.seed}, {iterations} iterations) on {len(videos)} "
          f"{args.split} videos, at inference size {network.inference_size}")
    with warnings.catch_warnings():  # scipy warns on degenerate resamples (e.g. 2 videos); the interval says it
        warnings.simplefilter("ignore")
        summary = summarise(with_baselines(network, videos, seed=args.seed))
        print("\nMechanism metrics: mean over videos [95 % BCa interval] (uniform: 1 for the ratios, 0 for "
              "the preference)\n")
        print(metric_table(summary, args.all_metrics))
        if args.no_interventions:
            return
        jf, effects = intervention_effects(network, videos, available_interventions(network, heads=args.heads))
    print(f"\nInterventions: ΔJ&F against the intact network (J&F {jf['intact'].mean():.3f}), paired by video\n")
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        signed = {c: "{:+.4f}".format for c in ("ΔJ&F", "low", "high")}
        print(effects.to_string(index=False, formatters={**signed, "p": "{:.3g}".format}))


if __name__ == "__main__":
    main()
