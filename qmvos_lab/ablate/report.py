"""Writing an ablation's results: DIR/runs.csv, DIR/summary.csv, the figures (and DIR/speed.csv)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..atomic import atomic_path
from ..viz.save import save_figure
from .figures import differences, jf_points
from .paper import CITATION, INCONSISTENCIES, TABLE3

SUMMARY_COLUMNS = ["variant", "videos", "seeds", "J&F", "ci_low", "ci_high", "IQM", "seed_min", "seed_max", "diff",
                   "diff_runs_low", "diff_runs_high", "p_value", "p_holm", "p_improve", "mdd", "seeds_needed",
                   "videos_needed", "paper_diff", "paper_scaled", "paper_table", "verdict"]  # printed; the CSV has all


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def write_outputs(runs: pd.DataFrame, summary: pd.DataFrame, output: str | os.PathLike,
                  reference: str = "qmvos", speed: pd.DataFrame | None = None, figures: bool = True) -> list[Path]:
    """Write the tidy table, the summary and the figures into `output` (each file atomically)."""
    output = Path(output)
    written = [write_csv(runs, output / "runs.csv"), write_csv(summary, output / "summary.csv")]
    if speed is not None:
        written.append(write_csv(speed, output / "speed.csv"))
    if figures:
        written.append(save_figure(jf_points(runs, summary), output / "jf_per_variant.png"))
        if reference in set(summary["variant"]) and len(summary) > 1:
            written.append(save_figure(differences(summary, reference), output / "differences.png"))
    return written


def paper_line(variant: str) -> str:
    """What Table 3 prints for `variant` (0-100 scale, as printed)."""
    row = TABLE3[variant]
    printed = (f"J&F {row.jf} J {row.j} F {row.f}" if row.jf is not None else row.note)
    return f"  {variant} (Table {row.table}, '{row.printed_as}'): {printed}"


def format_summary(summary: pd.DataFrame, speed: pd.DataFrame | None = None) -> str:
    """The summary as text: the numbers, then one reading per variant, then the citation."""
    columns = [c for c in SUMMARY_COLUMNS if c in summary]
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 200,
                           "display.max_columns", 50):
        lines = [summary[columns].to_string(index=False), ""]
    lines += [f"{row.variant}: {row.reading}" for row in summary.itertuples()]
    if "p_holm" in summary:
        methods = ", ".join(sorted({m for m in summary.get("p_method", []) if isinstance(m, str) and m}))
        lines += ["", "diff_runs_low/high: 95 % interval with runs (seeds) and videos resampled; p_value: sign-flip "
                  f"over videos ({methods or 'n/a'}); p_holm: Holm over the comparisons with the reference; "
                  "mdd: the smallest difference this seeds x videos design detects with 80 % power (alpha 0.05); "
                  "seeds_needed / videos_needed: to detect the observed difference so; paper_scaled: the paper's "
                  "difference as the same share of our full-model margin over xmem; IQM and p_improve "
                  "(P(variant > reference)) as rliable defines them (summary.csv has their intervals)"]
    if speed is not None:
        lines.append("")
        for row in speed.itertuples():
            lines.append(f"speed {row.model}: {row.ms_per_frame:.1f} ms/frame ({row.fps:.1f} FPS; paper "
                         f"{row.paper_fps} FPS) [{row.setting}]")
        lines.append(f"speed QMVOS / XMem time per frame: {speed['ratio'].iloc[0]:.3f} "
                     f"(paper {speed['paper_ratio'].iloc[0]:.3f})")
    lines += ["", f"paper: {CITATION}"]
    lines += [paper_line(variant) for variant in summary["variant"] if variant in TABLE3]
    lines += [f"  note: {text}" for text in INCONSISTENCIES[:1] if "xmem" in set(summary["variant"])]
    return "\n".join(lines)
