"""`make demo`: run every capability end to end on built-in sample data.

Each package contributes a step through the ``splat.demos`` entry-point group: a
``run(out_dir: Path) -> list[tuple[str, str]]`` function that returns rows
(what, result) for the final summary. Steps run in name order.
"""
from __future__ import annotations

import argparse
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

from rich.console import Console

from .progress import summary_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the toolkit's demo steps on built-in sample data.")
    ap.add_argument("-o", "--output", "--out", dest="out", default="demo_out", help="output folder (default demo_out/)")
    ap.add_argument("--only", default=None, help="run only steps whose name contains this text")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    rows = []
    failed = False
    for ep in sorted(entry_points(group="splat.demos"), key=lambda e: e.name):
        if args.only and args.only not in ep.name:
            continue
        console.rule(f"[bold]{ep.name}")
        t0 = time.perf_counter()
        try:
            step_rows = ep.load()(out / ep.name.split("_", 1)[-1])
        except Exception as e:  # report and continue with the other steps
            failed = True
            console.print_exception()
            rows.append((ep.name, f"FAILED: {e}", f"{time.perf_counter() - t0:.1f} s"))
            continue
        for what, result in step_rows:
            rows.append((f"{ep.name}: {what}", result, ""))
        rows.append((ep.name, "done", f"{time.perf_counter() - t0:.1f} s"))
    console.print(summary_table(f"Demo results (outputs in {out}/)", ["step", "result", "time"], rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
