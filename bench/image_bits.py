"""Where the bits of ``.gsi`` files go: bits per Gaussian for each stream.

    python bench/image_bits.py photo.gsi other.gsi            # table on stdout
    python bench/image_bits.py *.gsi --json bench/results/image_bits.json

Columns: header (container, JSON, stream lengths), position (``pos``, or the quadtree
``tree`` + ``cells``), shape (``sa`` size, ``su``/``sv`` anisotropy), colour (``c0``..), total.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.image.gsi import read_header, stream_sizes  # noqa: E402
from splat.io._common import read_bytes  # noqa: E402


def breakdown(path: Path) -> dict:
    data = read_bytes(path)
    h, _spec, _ = read_header(data, path)
    n = h["count"]
    parts = stream_sizes(data, path)
    row = {"file": path.name, "gaussians": n, "bpp": round(len(data) * 8 / (h["width"] * h["height"]), 4),
           "positions": "delta" if "pos" in parts else "tree"}
    per = {k: v * 8 / n for k, v in parts.items()}
    row["header"] = per["header"]
    row["position"] = per.get("pos", 0.0) + per.get("tree", 0.0) + per.get("cells", 0.0)
    row["shape"] = per["sa"] + per["su"] + per["sv"]
    row["colour"] = sum(v for k, v in per.items() if k.startswith("c") and k[1:].isdigit())
    row["total"] = len(data) * 8 / n
    row["streams"] = {k: round(v, 3) for k, v in per.items()}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    rows = [breakdown(p) for p in args.files]
    print("| file | Gaussians | bpp | header | position | shape | colour | total (bits/Gaussian) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['file']} | {r['gaussians']} | {r['bpp']:.3f} | {r['header']:.2f} | {r['position']:.2f} "
              f"({r['positions']}) | {r['shape']:.2f} | {r['colour']:.2f} | {r['total']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
