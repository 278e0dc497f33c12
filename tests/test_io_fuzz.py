"""Mutation fuzzing of every reader on real files.

Each reader sees at least 1,000 corrupted variants of real shared files (bit flips,
truncations, overwritten words, inserted/deleted bytes, edits of header fields and,
for the zip- and gzip-framed formats, edits behind the checksums). Every variant must
either decode to a finite scene or raise splat.FormatError, within a time bound and
without allocating far beyond the file size. ``SPLAT_FUZZ_CASES`` overrides the count.
The default run uses small real seeds (real files, or real scenes cut to a few hundred
Gaussians and re-encoded); the ``slow`` variants run 10x more cases, and the full-size
files (biker.spz, guitar.compressed.ply, plant.splat...).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import time
import tracemalloc
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from conftest import shared_file
from io_helpers import zip_files

import splat.io as sio
from splat import FormatError, GaussianScene
from splat.io import compressed_ply, dotsplat, ply, sog, spz
from splat.io._common import expansion_limit

CASES = int(os.environ.get("SPLAT_FUZZ_CASES", "1000"))
CPU_LIMIT_S = 2.0  # CPU seconds per case (typical: a few ms); CPU time ignores a busy machine's queueing
WALL_LIMIT_S = 30.0  # the hang guard in wall-clock time
MEM_EVERY = 25  # trace allocations on every 25th case (tracemalloc slows numpy down)

INTERESTING_U32 = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 31, 32, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF,
                   0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x5053474E]


# ---------------------------------------------------------------------------------- mutators
def flip_bits(data: bytes, rng: np.random.Generator, lo: int = 0, hi: int | None = None) -> bytes:
    if not data:
        return data
    hi = len(data) if hi is None else min(hi, len(data))
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(lo, max(hi, lo + 1)))
        if i < len(b):
            b[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, max(len(data), 1)))]


def overwrite_word(data: bytes, rng: np.random.Generator, lo: int = 0, hi: int | None = None) -> bytes:
    hi = len(data) if hi is None else min(hi, len(data))
    if hi - lo < 4:
        return flip_bits(data, rng)
    b = bytearray(data)
    i = int(rng.integers(lo, hi - 3))
    v = INTERESTING_U32[int(rng.integers(len(INTERESTING_U32)))] if rng.random() < 0.7 else int(rng.integers(0, 2**32))
    b[i: i + 4] = int(v).to_bytes(4, "little" if rng.random() < 0.8 else "big")
    return bytes(b)


def splice(data: bytes, rng: np.random.Generator) -> bytes:
    i = int(rng.integers(0, len(data) + 1))
    if rng.random() < 0.5:
        return data[:i] + bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8)) + data[i:]
    return data[:i] + data[i + int(rng.integers(1, 64)):]


def generic(data: bytes, rng: np.random.Generator, header: int = 256) -> bytes:
    r = rng.random()
    if r < 0.25:
        return flip_bits(data, rng)
    if r < 0.45:
        return flip_bits(data, rng, 0, header)
    if r < 0.6:
        return truncate(data, rng)
    if r < 0.8:
        return overwrite_word(data, rng, 0, header if rng.random() < 0.7 else None)
    return splice(data, rng)


def ply_header_edit(data: bytes, rng: np.random.Generator) -> bytes:
    """Edit one token of the PLY header: counts, types, names, keywords, line order."""
    head, sep, body = data.partition(b"end_header\n")
    lines = head.split(b"\n")
    i = int(rng.integers(0, len(lines)))
    words = lines[i].split(b" ")
    r = rng.random()
    if r < 0.35 and len(words) >= 2:
        j = int(rng.integers(0, len(words)))
        choices = [b"-1", b"0", b"1", b"3", b"257", b"99999999999999", b"4294967296", b"1.5", b"nan", b"",
                   b"float", b"double", b"uchar", b"list", b"int", b"element", b"property", b"vertex", b"chunk",
                   b"sh", b"x", b"f_rest_0", b"ascii", b"binary_big_endian", b"\xff"]
        words[j] = choices[int(rng.integers(len(choices)))]
        lines[i] = b" ".join(words)
    elif r < 0.55:
        del lines[i]
    elif r < 0.7:
        lines.insert(i, lines[int(rng.integers(0, len(lines)))])
    elif r < 0.85:
        j = int(rng.integers(0, len(lines)))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        return flip_bits(data, rng, 0, len(head) + 11)
    return b"\n".join(lines) + sep + body


def gzip_inner(data: bytes, rng: np.random.Generator) -> bytes:
    """Mutate the payload behind a gzip frame, then re-frame it so the CRC passes."""
    raw = gzip.decompress(data)
    return gzip.compress(generic(raw, rng, header=16), mtime=0)


def zip_entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _json_mutate(obj, rng: np.random.Generator):
    values = [None, -1, 0, 1, 3, 255, 256, 65536, 2**40, 1e308, -1e308, float("nan"), float("inf"), "x", "", [],
              [0.0], {}, True, "../meta.json", "means_l.webp"]
    if isinstance(obj, dict) and obj:
        k = list(obj)[int(rng.integers(len(obj)))]
        r = rng.random()
        if r < 0.2:
            del obj[k]
        elif r < 0.55 or not isinstance(obj[k], (dict, list)):
            obj[k] = values[int(rng.integers(len(values)))]
        else:
            obj[k] = _json_mutate(obj[k], rng)
    elif isinstance(obj, list) and obj:
        i = int(rng.integers(len(obj)))
        r = rng.random()
        if r < 0.2:
            del obj[i]
        elif r < 0.4:
            obj.append(obj[i])
        else:
            obj[i] = values[int(rng.integers(len(values)))] if not isinstance(obj[i], (dict, list)) else _json_mutate(obj[i], rng)
    return obj


def sog_mutate(data: bytes, rng: np.random.Generator) -> bytes:
    r = rng.random()
    if r < 0.3:
        return generic(data, rng, header=512)
    files = zip_entries(data)
    if r < 0.6:
        meta = json.loads(files["meta.json"])
        for _ in range(int(rng.integers(1, 3))):
            meta = _json_mutate(meta, rng)
        files["meta.json"] = json.dumps(meta).encode()
    elif r < 0.9:
        name = sorted(n for n in files if n.endswith(".webp"))[int(rng.integers(0, 5))]
        files[name] = generic(files[name], rng, header=64)
    else:
        names = sorted(n for n in files if n.endswith(".webp"))
        a, b = rng.choice(len(names), 2, replace=False)
        files[names[a]], files[names[b]] = files[names[b]], files[names[a]]
    return zip_files(files)


# ---------------------------------------------------------------------------------- targets
@dataclass
class Target:
    name: str
    decode: Callable[[bytes], GaussianScene]
    seeds: list[bytes]
    mutate: Callable[[bytes, np.random.Generator], bytes]


def _ply_mutate(data, rng):
    return ply_header_edit(data, rng) if rng.random() < 0.5 else generic(data, rng, header=data.find(b"end_header") + 11)


def _spz_mutate(data, rng):
    if data[:2] == b"\x1f\x8b":
        return gzip_inner(data, rng) if rng.random() < 0.6 else generic(data, rng, header=32)
    return generic(data, rng, header=32 + 16 * 6)


def _ascii_subset(path) -> bytes:
    s = ply.decode(path.read_bytes())[:48]
    binary = ply.encode(s)
    head, _, body = binary.partition(b"end_header\n")
    table = np.frombuffer(body, "<f4").reshape(len(s), -1)
    text = "\n".join(" ".join(f"{v:.9g}" for v in row) for row in table)
    return head.replace(b"binary_little_endian", b"ascii") + b"end_header\n" + text.encode() + b"\n"


def targets(full: bool) -> list[Target]:
    fruit = shared_file("scenes", "fruit_drops_sh3.ply")
    test64 = shared_file("scenes", "test64_sh.compressed.ply")
    plant = shared_file("scenes", "plant.splat")
    biker = shared_file("scenes", "biker.spz")
    wave = shared_file("video", "wave", "wave_0001.sog")
    biker_scene = spz.decode(biker.read_bytes())
    sub = biker_scene if full else biker_scene[:1000]
    spz_seeds = [spz.encode(sub, version=4), spz.encode(sub, version=3), spz.encode(sub, version=2)]
    if full:
        spz_seeds.append(biker.read_bytes())
    guitar = shared_file("scenes", "guitar.compressed.ply").read_bytes()
    return [
        Target("ply", lambda d: ply.decode(d, "fuzz.ply"), [fruit.read_bytes(), _ascii_subset(fruit)], _ply_mutate),
        Target("compressed-ply", lambda d: compressed_ply.decode(d, "fuzz.compressed.ply"),
               [test64.read_bytes()] + ([guitar] if full else []),
               lambda d, r: ply_header_edit(d, r) if r.random() < 0.5 else generic(d, r, header=d.find(b"end_header") + 11)),
        Target("splat", lambda d: dotsplat.decode(d, "fuzz.splat"),
               [plant.read_bytes() if full else plant.read_bytes()[: 32 * 512]], generic),
        Target("spz", lambda d: spz.decode(d, "fuzz.spz"), spz_seeds, _spz_mutate),
        Target("sog", lambda d: sog.decode(d, "fuzz.sog"), [wave.read_bytes()], sog_mutate),
    ]


def run_fuzz(target: Target, cases: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    outcomes = {"decoded": 0, "format_error": 0, "max_s": 0.0, "max_cpu_s": 0.0, "max_mem_ratio": 0.0}
    failures = []
    t_all = time.perf_counter()
    for i in range(cases):
        base = target.seeds[i % len(target.seeds)]
        data = target.mutate(base, rng)
        trace = i % MEM_EVERY == 0
        if trace:
            tracemalloc.start()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            scene = target.decode(data)
            assert isinstance(scene, GaussianScene)
            # numpy, not scene.check_finite(): torch's thread pool is slow on a busy machine
            assert all(np.isfinite(t.numpy()).all() for t in scene.fields().values())
            outcomes["decoded"] += 1
        except FormatError as e:
            assert "fuzz." in str(e), f"message does not name the file: {e}"
            outcomes["format_error"] += 1
        except Exception as e:  # noqa: BLE001 - this is what the fuzz test hunts for
            failures.append(f"case {i} ({len(data)} bytes): {type(e).__name__}: {e}")
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            limit = 2 * expansion_limit(len(data)) + (32 << 20)
            outcomes["max_mem_ratio"] = max(outcomes["max_mem_ratio"], peak / max(len(data), 1))
            if peak > limit:
                failures.append(f"case {i}: peak allocation {peak:,} B for a {len(data):,} B input")
        outcomes["max_s"] = max(outcomes["max_s"], dt)
        outcomes["max_cpu_s"] = max(outcomes["max_cpu_s"], cpu)
        if cpu > CPU_LIMIT_S or dt > WALL_LIMIT_S:
            failures.append(f"case {i}: took {cpu:.2f} s CPU, {dt:.2f} s wall")
    outcomes["total_s"] = time.perf_counter() - t_all
    assert not failures, f"{target.name}: {len(failures)} bad outcomes, first: " + "; ".join(failures[:5])
    return outcomes


TARGET_NAMES = ["ply", "compressed-ply", "splat", "spz", "sog"]


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_fuzz_reader(name):
    target = next(t for t in targets(full=False) if t.name == name)
    out = run_fuzz(target, CASES, seed=TARGET_NAMES.index(name))
    assert out["decoded"] + out["format_error"] == CASES
    print(f"\nfuzz {name}: {CASES} cases, {out}")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", TARGET_NAMES)
def test_fuzz_reader_many(name):
    target = next(t for t in targets(full=False) if t.name == name)
    out = run_fuzz(target, 10 * CASES, seed=100 + TARGET_NAMES.index(name))
    print(f"\nfuzz {name}: {10 * CASES} cases, {out}")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", TARGET_NAMES)
def test_fuzz_reader_full_files(name):
    target = next(t for t in targets(full=True) if t.name == name)
    out = run_fuzz(target, CASES, seed=200 + TARGET_NAMES.index(name))
    print(f"\nfuzz (full-size files) {name}: {CASES} cases, {out}")


# ---------------------------------------------------------------------------------- folder formats
# SOG v1/v2 folders, streamed SOG trees and splatfacto run folders: the mutations also touch the
# filesystem. A file becomes a symlink (to /dev/zero, to a secret beside the case folder, to a valid
# file outside, to another file of the folder), a FIFO, or a folder a link out; JSON indexes get
# duplicate references. Every case must decode to a finite scene or raise a FormatError naming a
# file of the case, in bounded time and memory, without ever opening the secret or /dev/zero
# (an audit hook watches every open while the fuzz runs).
FOLDER_CASES = int(os.environ.get("SPLAT_FOLDER_FUZZ_CASES", "200"))
FOLDER_SECRET = b"FOLDER-FUZZ-SECRET-3e1b"
_WATCH: dict = {"on": False, "paths": set(), "hits": []}


def _audit(event, args):
    if _WATCH["on"] and event == "open" and args and isinstance(args[0], (str, bytes)):
        p = os.fsdecode(args[0])
        if p in _WATCH["paths"] or os.path.realpath(p) in _WATCH["paths"]:
            _WATCH["hits"].append(p)


_AUDIT_INSTALLED: list = []


def _install_audit() -> None:
    if not _AUDIT_INSTALLED:  # an audit hook cannot be removed: one, idle unless a folder fuzz runs
        import sys

        sys.addaudithook(_audit)
        _AUDIT_INSTALLED.append(True)


LINK, FIFO = "link", "fifo"


def _materialise(folder, files: dict) -> None:
    """Write ``files`` ({relative path: bytes | (LINK, target) | (FIFO,)}) under ``folder``."""
    for rel, v in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(v, tuple) and v[0] == LINK:
            p.symlink_to(v[1], target_is_directory=os.path.isdir(v[1]) if os.path.isabs(str(v[1])) else False)
        elif isinstance(v, tuple) and v[0] == FIFO:
            os.mkfifo(p)
        else:
            p.write_bytes(v)


def _files_of(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _dup_refs(files: dict, rng: np.random.Generator) -> dict:
    """Repeat a reference inside a JSON index: a texture named twice, a unit listed twice, a
    leaf's rows referenced again, a checkpoint step repeated under another name."""
    files = dict(files)
    idx = [k for k in files if k.endswith(".json") and isinstance(files[k], bytes)]
    ckpts = [k for k in files if k.endswith(".ckpt")]
    if ckpts and (not idx or rng.random() < 0.5):
        k = ckpts[0]
        files[k.replace(k.rsplit("-", 1)[-1], "999999999.ckpt")] = (LINK, os.path.basename(k))
        return files
    if not idx:
        return files
    k = idx[int(rng.integers(len(idx)))]
    try:
        meta = json.loads(files[k])
    except ValueError:
        return files
    if "filenames" in meta and meta["filenames"]:
        r = rng.random()
        if r < 0.4:
            meta["filenames"].append(meta["filenames"][0])
        elif r < 0.7 or len(meta["filenames"]) < 2:
            leaves, stack = [], [meta.get("tree")]
            while stack:
                nd = stack.pop()
                if isinstance(nd, dict):
                    stack += nd.get("children", []) if isinstance(nd.get("children"), list) else []
                    if isinstance(nd.get("lods"), dict):
                        leaves.append(nd)
            if leaves:
                a, b = leaves[int(rng.integers(len(leaves)))], leaves[int(rng.integers(len(leaves)))]
                b["lods"] = json.loads(json.dumps(a["lods"])) if a is not b else a["lods"]
                if a is b:
                    meta["tree"]["children"].append(json.loads(json.dumps(a)))
        else:
            meta["filenames"][1] = "./" + meta["filenames"][0]
    else:
        secs = [s for s in meta.values() if isinstance(s, dict) and isinstance(s.get("files"), list) and s["files"]]
        if secs:
            a, b = secs[int(rng.integers(len(secs)))], secs[int(rng.integers(len(secs)))]
            b["files"][int(rng.integers(len(b["files"])))] = a["files"][0]
    files[k] = json.dumps(meta).encode()
    return files


def folder_mutate(files: dict, rng: np.random.Generator, outside) -> dict:
    files = dict(files)
    names = sorted(k for k in files if isinstance(files[k], bytes))
    r = rng.random()
    name = names[int(rng.integers(len(names)))]
    if r < 0.4:
        if name.endswith(".json") and rng.random() < 0.6:
            try:
                meta = json.loads(files[name])
                for _ in range(int(rng.integers(1, 3))):
                    meta = _json_mutate(meta, rng)
                files[name] = json.dumps(meta).encode()
            except ValueError:
                files[name] = generic(files[name], rng, header=64)
        elif name.endswith(".yml"):
            files[name] = files[name].replace(b"sh_degree: 3", [b"sh_degree: 7", b"sh_degree: " + b"9" * 5000,
                                                                 b"sh_degree: 0"][int(rng.integers(3))])
        else:
            files[name] = generic(files[name], rng, header=64)
    elif r < 0.65:
        depth = name.count("/")
        choices = ["/dev/zero", "../" * (depth + 1) + "secret.bin", str(outside["secret"]),
                   "../" * (depth + 1) + "outside/" + os.path.basename(name), names[int(rng.integers(len(names)))]]
        target = choices[int(rng.integers(len(choices)))]
        if target == name:
            target = "/dev/zero"
        files[name] = (LINK, target if target.startswith("/") or "/" not in name else os.path.relpath(
            target, os.path.dirname(name)) if not target.startswith("..") else target)
    elif r < 0.75:
        files[name] = (FIFO,)
    elif r < 0.92:
        files = _dup_refs(files, rng)
    else:
        dirs = sorted({k.split("/")[0] for k in names if "/" in k})
        if dirs:  # a whole unit (or nerfstudio_models) folder becomes a link out
            d = dirs[int(rng.integers(len(dirs)))]
            files = {k: v for k, v in files.items() if not k.startswith(d + "/")}
            files[d] = (LINK, str(outside["dir"]))
        else:
            files[name] = (LINK, str(outside["secret"]))
    return files


@dataclass
class FolderTarget:
    name: str
    seeds: list[dict]
    entry: str  # what the reader is given, relative to the case folder ("" = the folder)


def _lod_files(scene: GaussianScene, tmp) -> dict:
    from splat.io import streamed_sog

    d = tmp / "lod-seed"
    streamed_sog.write(scene, d / "lod-meta.json", levels=2, leaf_size=40, unit_size=80, sh_iterations=2)
    return _files_of(d)


def _run_files(scene: GaussianScene, tmp) -> dict:
    from splat.io import nerfstudio

    return {"nerfstudio_models/step-000000100.ckpt": nerfstudio.encode(scene, step=100),
            "config.yml": f"pipeline:\n  model:\n    sh_degree: {scene.sh_degree}\n".encode()}


def folder_targets(tmp) -> list[FolderTarget]:
    from test_sog_v1 import sog_v1_files

    fruit = ply.decode(shared_file("scenes", "fruit_drops_sh3.ply").read_bytes())[:200].replace(extras={})
    wave = zip_entries(shared_file("video", "wave", "wave_0001.sog").read_bytes())
    return [
        FolderTarget("sog-v2-folder", [wave, sog.encode_files(fruit, sort=False, sh_iterations=2)], ""),
        FolderTarget("sog-v1-folder", [sog_v1_files(fruit[:120])], ""),
        FolderTarget("streamed-sog", [_lod_files(fruit, tmp)], ""),
        FolderTarget("splatfacto", [_run_files(fruit, tmp), _run_files(fruit.with_sh_degree(0), tmp)], ""),
    ]


def run_folder_fuzz(target: FolderTarget, cases: int, tmp, seed: int = 0) -> dict:
    import shutil

    rng = np.random.default_rng(seed)
    secret = tmp / "secret.bin"
    secret.write_bytes(FOLDER_SECRET)
    outside = tmp / "outside"
    if not outside.exists():
        _materialise(outside, {k: v for k, v in target.seeds[0].items() if "/" not in k})
    _install_audit()
    _WATCH["paths"] = {str(secret.resolve()), "/dev/zero"}
    outcomes = {"decoded": 0, "format_error": 0, "max_s": 0.0, "max_cpu_s": 0.0}
    failures = []
    for i in range(cases):
        base = target.seeds[i % len(target.seeds)]
        files = folder_mutate(base, rng, {"secret": secret, "dir": outside})
        case = tmp / f"case{i:05d}"
        _materialise(case, files)
        arg = case / target.entry if target.entry else case
        total = sum(len(v) for v in files.values() if isinstance(v, bytes))
        trace = i % MEM_EVERY == 0
        if trace:
            tracemalloc.start()
        _WATCH["hits"].clear()
        _WATCH["on"] = True
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            scene = sio.read_scene(arg)
            assert all(np.isfinite(t.numpy()).all() for t in scene.fields().values())
            outcomes["decoded"] += 1
        except FormatError as e:
            if case.name not in str(e):
                failures.append(f"case {i}: message does not name a file of the case: {e}")
            if FOLDER_SECRET.decode() in str(e):
                failures.append(f"case {i}: the secret leaked into the message")
            outcomes["format_error"] += 1
        except Exception as e:  # noqa: BLE001 - this is what the fuzz test hunts for
            failures.append(f"case {i}: {type(e).__name__}: {e}")
        finally:
            _WATCH["on"] = False
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            if peak > 2 * expansion_limit(total) + (32 << 20):
                failures.append(f"case {i}: peak allocation {peak:,} B for {total:,} B of files")
        if _WATCH["hits"]:
            failures.append(f"case {i}: opened {sorted(set(_WATCH['hits']))}")
        outcomes["max_s"] = max(outcomes["max_s"], dt)
        outcomes["max_cpu_s"] = max(outcomes["max_cpu_s"], cpu)
        if cpu > CPU_LIMIT_S or dt > WALL_LIMIT_S:
            failures.append(f"case {i}: took {cpu:.2f} s CPU, {dt:.2f} s wall")
        shutil.rmtree(case)
    assert not failures, f"{target.name}: {len(failures)} bad outcomes, first: " + "; ".join(failures[:5])
    return outcomes


FOLDER_TARGET_NAMES = ["sog-v2-folder", "sog-v1-folder", "streamed-sog", "splatfacto"]


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs FIFOs and /dev/zero")
@pytest.mark.parametrize("name", FOLDER_TARGET_NAMES)
def test_fuzz_folder_reader(name, tmp_path):
    target = next(t for t in folder_targets(tmp_path) if t.name == name)
    out = run_folder_fuzz(target, FOLDER_CASES, tmp_path, seed=300 + FOLDER_TARGET_NAMES.index(name))
    assert out["decoded"] + out["format_error"] == FOLDER_CASES
    assert out["format_error"] > FOLDER_CASES // 4  # the links, FIFOs and repeats are refused
    print(f"\nfolder fuzz {name}: {FOLDER_CASES} cases, {out}")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs FIFOs and /dev/zero")
@pytest.mark.parametrize("name", FOLDER_TARGET_NAMES)
def test_fuzz_folder_reader_many(name, tmp_path):
    target = next(t for t in folder_targets(tmp_path) if t.name == name)
    out = run_folder_fuzz(target, 10 * FOLDER_CASES, tmp_path, seed=400 + FOLDER_TARGET_NAMES.index(name))
    print(f"\nfolder fuzz {name}: {10 * FOLDER_CASES} cases, {out}")
