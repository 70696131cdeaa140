"""Evaluation: J&F exactly as the official DAVIS tool, and YouTube-VOS submission packaging.

Segmenting and scoring in-memory videos (generated, or DAVIS val sequences) with a network is in
`qmvos_lab.eval.videos` (imported on its own: it needs torch, which the folder protocol does not)."""

from .davis import EvaluationResult, evaluate_folders, evaluate_sequence, write_results
from .metrics import boundary_map, f_measure, f_measure_frames, jaccard, statistics
from .youtube import package_youtube_submission

__all__ = ["EvaluationResult", "evaluate_folders", "evaluate_sequence", "write_results", "boundary_map",
           "f_measure", "f_measure_frames", "jaccard", "statistics", "package_youtube_submission"]
