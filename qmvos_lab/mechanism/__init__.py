"""What QMVOS's queries do, measured (issue 26): attention metrics against uniform shares and
baselines (metrics.py, study.py), causal interventions at inference (interventions.py) and their
effect on J&F (effects.py), and an optional probe that logs the metrics during training (probe.py)."""

from .effects import effect_table, intervention_effects, intervention_jf, per_video_jf
from .interventions import (available_interventions, first_frame_queries, head_knocked_out, mean_queries,
                            permuted_queries, without_qcim, without_sim_interaction)
from .metrics import (CROSS, CROSS_METRICS, QCIM_SELF, SELF_METRICS, SIM_SELF, cross_frame_metrics,
                      recording_metrics, self_frame_metrics)
from .probe import MechanismProbe
from .study import mechanism_metrics, record_videos, summarise, untrained_like, with_baselines

__all__ = ["CROSS", "CROSS_METRICS", "QCIM_SELF", "SELF_METRICS", "SIM_SELF", "MechanismProbe",
           "available_interventions", "cross_frame_metrics", "effect_table", "first_frame_queries",
           "head_knocked_out", "intervention_effects", "intervention_jf", "mean_queries", "mechanism_metrics",
           "per_video_jf", "permuted_queries", "record_videos", "recording_metrics", "self_frame_metrics",
           "summarise", "untrained_like", "with_baselines", "without_qcim", "without_sim_interaction"]
