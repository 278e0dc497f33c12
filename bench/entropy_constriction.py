"""Our entropy coders against ``constriction`` (optional, bench only) on real ``.lgs`` streams.

    .venv/bin/python -m pip install constriction   # not a runtime dependency
    .venv/bin/python bench/entropy_constriction.py [--scenes donut_sh0.ply,plant.splat,biker.spz]

Streams: the 8-bit quantized attributes of each scene in Morton order, as ``.lgs`` level 1
stores them (opacity, log-scale x, first rotation value, colour g). Per stream:

* ``ours static``: ``compress.entropy.encode_ints`` (order-0 rANS, table in the stream);
* ``ours context``: ``compress.context.encode_ctx`` (adaptive binary models, own rANS);
* ``constriction static``: constriction's ANS (``stack.AnsCoder``) with a categorical model
  of the stream's histogram (payload only: the table is not counted);
* ``constriction + our models``: constriction's ANS fed the probabilities our adaptive binary
  models give every decision (same model as ``ours context``, only the coder differs). Its
  decoder must update the model between decisions, so it calls constriction once per binary
  decision; that time is measured on the first ``--probe`` decisions and scaled to the stream.

Sizes in bytes; times are medians of 3 (wall seconds) on a shared 2-core machine.
Writes bench/results/entropy_constriction.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import constriction  # noqa: E402

from compress.context import PROB_ONE, RATES, _model_bins, _n_models, _recip, decode_ctx, encode_ctx  # noqa: E402
from compress.entropy import decode_ints, encode_ints  # noqa: E402
from compress.scene.positions import PositionGrid, morton_order  # noqa: E402
from compress.scene.quantize import UniformQuant, encode_rotations  # noqa: E402
from splat.io import read_scene  # noqa: E402

SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def timed(fn, repeat: int = 3):
    ts, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return out, statistics.median(ts)


def streams(path: Path) -> dict[str, np.ndarray]:
    """8-bit quantized attribute streams in Morton order (as .lgs level 1 stores them)."""
    s = read_scene(path)
    means = s.means.double().numpy()
    perm, _ = morton_order(means, PositionGrid.fit(means, 16))
    op = s.opacities.double().numpy()[perm][:, None]
    ls = s.log_scales.double().numpy()[perm]
    dc = s.sh_dc.double().numpy()[perm]
    _, rv = encode_rotations(s.quats.double().numpy()[perm], 8)
    return {"opacity": UniformQuant.fit(op, 8).quantize(op)[:, 0], "log-scale x": UniformQuant.fit(ls, 8).quantize(ls)[:, 0],
            "rotation value 0": rv[:, 0], "colour g": UniformQuant.fit(dc, 8).quantize(dc)[:, 1]}


def constriction_static(v: np.ndarray) -> dict:
    hist = np.bincount(v, minlength=256).astype(np.float64)
    model = constriction.stream.model.Categorical(hist / hist.sum(), perfect=False)
    sym = v.astype(np.int32)

    def enc():
        c = constriction.stream.stack.AnsCoder()
        c.encode_reverse(sym, model)
        return c.get_compressed()

    comp, te = timed(enc)
    back, td = timed(lambda: constriction.stream.stack.AnsCoder(comp).decode(model, len(sym)))
    assert np.array_equal(back, sym)
    return {"bytes": int(comp.nbytes), "encode_s": te, "decode_s": td, "note": "payload only, no table"}


def constriction_our_models(v: np.ndarray, probe: int) -> dict:
    """constriction's ANS coding the binary decisions of our context model (prev-value context off, slow rate)."""
    bits, rate = 8, RATES[1]
    nb_max = v.size * bits
    bin_bits = np.empty(nb_max, dtype=np.int64)
    bin_probs = np.empty(nb_max, dtype=np.int64)
    ext = np.zeros(v.size, dtype=np.int64)
    t0 = time.perf_counter()
    nb = _model_bins(v.astype(np.int64), ext, bits, 0, 0, _n_models(bits, 1, 0), _recip(rate), bin_bits, bin_probs)
    p1 = bin_probs[:nb] / PROB_ONE
    probs = np.stack([1.0 - p1, p1], axis=1)
    model = constriction.stream.model.Categorical(perfect=False)
    c = constriction.stream.stack.AnsCoder()
    c.encode_reverse(bin_bits[:nb].astype(np.int32), model, probs)
    comp = c.get_compressed()
    te = time.perf_counter() - t0
    ours = encode_ctx(v, bits, modes=(0,), prev_bits=(0,), rates=(rate,))
    # decoding: the model must see each decision before the next probability exists -> one call per decision
    d = constriction.stream.stack.AnsCoder(comp)
    k = min(probe, nb)
    t0 = time.perf_counter()
    for i in range(k):
        got = d.decode(model, probs[i:i + 1])
        assert got[0] == bin_bits[i]
    td = (time.perf_counter() - t0) * nb / k
    return {"bytes": int(comp.nbytes), "ours_same_model_bytes": len(ours), "encode_s": te,
            "decode_s_extrapolated": td, "decisions": int(nb)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="donut_sh0.ply,plant.splat,biker.spz")
    ap.add_argument("--probe", type=int, default=50000, help="binary decisions decoded one by one to time constriction + our models")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "entropy_constriction.json"))
    args = ap.parse_args(argv)
    rows, load = [], os.getloadavg()
    print(f"load average at start: {load}")
    for name in args.scenes.split(","):
        for sname, v in streams(SHARED / "scenes" / name).items():
            v = np.ascontiguousarray(v, dtype=np.int64)
            st, te = timed(lambda: encode_ints(v))
            _, td = timed(lambda: decode_ints(st, max_count=v.size))
            cx, tce = timed(lambda: encode_ctx(v, 8), repeat=1)
            back, tcd = timed(lambda: decode_ctx(cx, v.size, 8))
            assert np.array_equal(back, v)
            row = {"scene": name, "stream": sname, "count": int(v.size),
                   "ours_static": {"bytes": len(st), "encode_s": te, "decode_s": td},
                   "ours_context": {"bytes": len(cx), "encode_s": tce, "decode_s": tcd},
                   "constriction_static": constriction_static(v),
                   "constriction_our_models": constriction_our_models(v, args.probe)}
            rows.append(row)
            cm = row["constriction_our_models"]
            print(f"{name:22s} {sname:17s} n={v.size:7d}  ours static {len(st):7d} B ({td * 1e3:5.1f} ms dec)  "
                  f"ours context {len(cx):7d} B ({tcd * 1e3:5.1f} ms)  constriction static {row['constriction_static']['bytes']:7d} B "
                  f"({row['constriction_static']['decode_s'] * 1e3:5.1f} ms)  same model: ours {cm['ours_same_model_bytes']:7d} B, "
                  f"constriction {cm['bytes']:7d} B ({cm['decode_s_extrapolated']:.2f} s dec)", flush=True)
    Path(args.out).write_text(json.dumps({"load_average_start": load, "load_average_end": os.getloadavg(),
                                          "constriction": getattr(constriction, "__version__", "installed"),
                                          "note": "shared 2-core machine", "rows": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
