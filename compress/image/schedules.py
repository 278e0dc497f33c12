"""Named step schedules of the image fitter (no heavy imports: the CLI reads them at start-up)."""
from __future__ import annotations

# Named step schedules (``fit.schedule(cfg, name)``, ``splat fit-image --schedule``):
# "fast" renders the first quarter of the steps at 1/4 resolution and the second at 1/2
# (coarse to fine), so most full-resolution steps go to the detail; "thorough" is the
# longer fit with a quarter of its steps at 1/2 resolution (bench/image_speed.py compares them).
# Both use FitConfig's learning rates.
SCHEDULES: dict[str, dict[str, float | int]] = {
    "fast": {"steps": 160, "warmup_end": 0.5, "coarse_end": 0.25},
    "thorough": {"steps": 180, "warmup_end": 0.25, "coarse_end": 0.0},
}
DEFAULT_SCHEDULE = "thorough"  # FitConfig()'s defaults
COARSE_MIN_SIDE = 32  # px: smaller images skip the quarter-resolution part
