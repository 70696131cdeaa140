"""What the queries do (issue 26): the mechanism metrics of a cached zoo network with its
baselines, and the effect of each causal intervention on J&F.

    python benchmarks/mechanism.py [--network qmvos-small] [--preset cpu-tiny] [--seed 0 | --seeds 0 1 2]
                                   [--split synthetic-hard] [--videos 4] [--frames T] [--heads]
                                   [--all-metrics] [--no-interventions]

The network comes from the zoo cache (`qmvos_lab.zoo.trained`; trained once when missing, so
QMVOS_LAB_SMOKE=1 gives a 12-iteration network in seconds). Prints
  1. per attention and metric, the mean over videos (each the mean over its frames and queries,
     head mean) with a 95 % BCa interval, for the network, an untrained network of its config
     and uniform attention (qmvos_lab.mechanism.study);
  2. per intervention, ΔJ&F against the intact network on the same videos with the paired 95 %
     BCa interval, the sign-flip p and p_holm, Holm over the interventions (qmvos_lab.mechanism.effects).
With several seeds (one trained network each) every video's value is first averaged over the seeds
(as the ablation runner does), and each seed's own mean is printed beside it to show the spread
between training runs.
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd

from qmvos_lab import zoo
from qmvos_lab.data.synthetic import SPLITS, split_videos
from qmvos_lab.mechanism import available_interventions, summarise, with_baselines
from qmvos_lab.mechanism.effects import effect_table, intervention_jf

KEY_METRICS = ("own-object mass", "own-object mass / share", "preference", "spatial preference", "query-map cosine",
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
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="several seeds (overrides --seed)")
    parser.add_argument("--split", default="synthetic-hard", choices=sorted(SPLITS))
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=None, help="shorten the videos to T frames (smoke runs)")
    parser.add_argument("--heads", action="store_true", help="also knock out each QCIM cross-attention head")
    parser.add_argument("--all-metrics", action="store_true", help="print every metric, not the key ones")
    parser.add_argument("--no-interventions", action="store_true")
    args = parser.parse_args()
    seeds = args.seeds or [args.seed]

    videos = list(split_videos(args.split, args.videos, **({} if args.frames is None else {"length": args.frames})))
    iterations = zoo.training_config(args.network, args.preset, seeds[0], smoke=zoo.smoke_mode()).iterations
    tables, jfs, networks = [], [], {}
    for seed in seeds:
        networks[seed] = network = zoo.trained(args.network, args.preset, seed, progress=False)
        print(f"{args.network} ({args.preset}, seed {seed}, {iterations} iterations) on {len(videos)} "
              f"{args.split} videos, at inference size {network.inference_size}")
    with warnings.catch_warnings():  # scipy warns on degenerate resamples (e.g. 2 videos); the interval says it
        warnings.simplefilter("ignore")
        for seed, network in networks.items():
            tables.append(with_baselines(network, videos, seed=seed).assign(seed=seed))
        table = pd.concat(tables, ignore_index=True)
        summary = summarise(table)  # each video's value averages its frames, queries and the seeds
        print("\nMechanism metrics: mean over videos [95 % BCa interval] (uniform: 1 for the ratios, 0 for "
              "the preference)" + (f"; each video averaged over seeds {seeds}" if len(seeds) > 1 else "") + "\n")
        print(metric_table(summary, args.all_metrics))
        if len(seeds) > 1:
            print("\nThe trained networks' means, seed by seed (the spread between training runs):\n")
            print(seed_table(table, args.all_metrics))
        if args.no_interventions:
            return
        chosen = available_interventions(networks[seeds[0]], heads=args.heads)
        for seed, network in networks.items():
            jfs.append(intervention_jf(network, videos, available_interventions(network, heads=args.heads)))
    jf = sum(jfs) / len(jfs)  # videos x (intact, interventions): the mean over seeds
    effects = effect_table(jf[["intact", *chosen]])
    print(f"\nInterventions: ΔJ&F against the intact network (J&F {jf['intact'].mean():.3f}), paired by video"
          + (f", each video averaged over seeds {seeds}" if len(seeds) > 1 else "") + "\n")
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        signed = {c: "{:+.4f}".format for c in ("ΔJ&F", "low", "high")}
        print(effects.to_string(index=False, formatters={**signed, "p": "{:.3g}".format, "p_holm": "{:.3g}".format}))
    if len(seeds) > 1:
        per_seed = pd.DataFrame({f"seed {seed}": (j.drop(columns="intact").sub(j["intact"], axis=0)).mean()
                                 for seed, j in zip(seeds, jfs)})
        print("\nΔJ&F seed by seed (mean over videos):\n")
        print(per_seed.to_string(float_format="{:+.4f}".format))


def seed_table(table: pd.DataFrame, all_metrics: bool = False) -> str:
    """The trained network's mean (head mean, over videos) per (attention, metric), one column per seed."""
    rows = table[(table["network"] == "trained") & (table["head"].astype(str) == "mean")]
    if not all_metrics:
        rows = rows[rows["metric"].isin(KEY_METRICS)]
    per_video = rows.groupby(["attention", "metric", "seed", "video"], sort=False)["value"].mean()
    means = per_video.groupby(["attention", "metric", "seed"], sort=False).mean().unstack("seed")
    return means.rename(columns=lambda seed: f"seed {seed}").to_string(float_format="{:.3f}".format)


if __name__ == "__main__":
    main()
