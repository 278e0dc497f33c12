"""Named step schedules of the image fitter (no heavy imports: the CLI reads them at start-up)."""
from __future__ import annotations

# Named step schedules (``fit.schedule(cfg, name)``, ``splat fit-image --schedule``): all
# render the first quarter of their steps at 1/2 resolution; "fast" runs two thirds of
# "thorough"'s steps (bench/image_speed.py compares them with another checkout's default).
# "best" runs twice "thorough"'s main fit, reaches the full count sooner (``growth_end``) and
# keeps rate control's refinement stage at thorough's 45 steps (``finetune_fraction``): a
# longer refinement under the rate term measured lower at the same size. Refills come every
# ``refill_every`` of the steps: two after growth in each; "fast" keeps a 50-step period (its
# 34 steps at 0.28 ended 0.01-0.08 dB lower at 0.5 bpp).
# All use FitConfig's learning rates. A quarter-resolution start (``coarse_end``) measured
# worse at full size than the same cost spent at half resolution.
SCHEDULES: dict[str, dict[str, float | int]] = {
    "fast": {"steps": 120, "warmup_end": 0.25, "coarse_end": 0.0, "growth_end": 0.4, "finetune_fraction": 0.25,
             "refill_every": 0.42},
    "thorough": {"steps": 180, "warmup_end": 0.25, "coarse_end": 0.0, "growth_end": 0.4, "finetune_fraction": 0.25,
                 "refill_every": 0.28},
    "best": {"steps": 360, "warmup_end": 0.25, "coarse_end": 0.0, "growth_end": 0.3, "finetune_fraction": 0.125,
             "refill_every": 0.28},
}
DEFAULT_SCHEDULE = "thorough"  # FitConfig()'s defaults
COARSE_MIN_SIDE = 32  # px: smaller images skip the quarter-resolution part
