"""Moved: segmenting and scoring videos lives in `qmvos_lab.eval` (`qmvos_lab.eval.videos`).

This module re-exports those names, under their old names, for the code and notebooks that
still import them from here; new code imports from qmvos_lab.eval."""

from ..eval.videos import copy_first_mask, generated_config, jf_mean, jf_table, segment_videos

segment_generated = segment_videos  # the old name (it segments DAVIS videos too)

__all__ = ["copy_first_mask", "generated_config", "jf_mean", "jf_table", "segment_generated"]
