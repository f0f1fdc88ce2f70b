# ruff: noqa: E501  (long table rows and peer call lines read better unwrapped)
"""Segmentation metrics: medlens against MONAI, DeepMind surface-distance and MedPy.

Builds two deterministic mask pairs -- a liver-sized perturbed ellipsoid pair on a
512x512x300 grid with spacing (0.8, 0.8, 2.5) mm, and a 128^3 pair at 1 mm -- runs medlens
and every installed peer on them in this one process, checks that the values of matching
definitions agree (relative 1e-6), and prints wall times (best of ``--repeat``), ratios
and peak extra memory (each tool run once in a fresh spawned process that rebuilds the pair: the peak
resident size during the call, reset just before it, minus the resident size before
it, so C/C++ allocations count too). medlens's distances use the numba kernels of
``medlens.metrics._nearest`` when numba is installed (the first call, outside the timing,
compiles them or loads them from numba's cache).

Run::

    .venv/bin/python benchmarks/metrics_vs_peers.py [--repeat 3] [--threads N]

MedPy runs on the 128^3 pair only (about 30 s per metric at the large size).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import medlens.metrics as mm

RTOL = 1e-6


# --------------------------------------------------------------------------- data
def organ_pair(shape, spacing, center_mm, radii_mm, seed):
    """A perturbed-ellipsoid reference and a differently perturbed, shifted prediction with
    one small false-positive island; computed inside a bounding box only."""
    rng = np.random.default_rng(seed)
    ref = np.zeros(shape, dtype=bool)
    pred = np.zeros(shape, dtype=bool)
    geom = list(zip(center_mm, radii_mm, spacing, shape, strict=True))
    lo = [max(int((c - 1.3 * r) / s), 0) for c, r, s, _ in geom]
    hi = [min(int((c + 1.3 * r) / s) + 1, n) for c, r, s, n in geom]
    axes = [np.arange(a, b) * s - c for a, b, s, c in zip(lo, hi, spacing, center_mm, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    rad = np.sqrt((x / radii_mm[0]) ** 2 + (y / radii_mm[1]) ** 2 + (z / radii_mm[2]) ** 2)
    theta = np.arctan2(y, x)
    phi = np.arctan2(z, np.sqrt(x**2 + y**2))
    a = rng.uniform(0.02, 0.05, 4)
    p = rng.uniform(0, 2 * np.pi, 4)
    bump_r = 1 + a[0] * np.sin(3 * theta + p[0]) * np.cos(2 * phi) + a[1] * np.cos(5 * theta + p[1])
    bump_p = 1 + a[2] * np.sin(4 * theta + p[2]) * np.cos(3 * phi + p[3]) + a[3] * np.sin(2 * phi)
    sl = tuple(slice(a_, b_) for a_, b_ in zip(lo, hi, strict=True))
    ref[sl] = rad <= bump_r
    shift = np.array(spacing) * rng.uniform(-1.5, 1.5, 3)
    rad_p = np.sqrt(
        ((x - shift[0]) / radii_mm[0]) ** 2
        + ((y - shift[1]) / radii_mm[1]) ** 2
        + ((z - shift[2]) / radii_mm[2]) ** 2
    )
    pred[sl] = rad_p <= bump_p
    # a small false-positive island outside the organ
    ci = [int((c + 1.15 * r) / s) for c, r, s in zip(center_mm, radii_mm, spacing, strict=True)]
    ci = [min(v, n - 3) for v, n in zip(ci, shape, strict=True)]
    pred[ci[0] - 2 : ci[0] + 2, ci[1] - 2 : ci[1] + 2, ci[2] - 1 : ci[2] + 1] = True
    return ref, pred


# --------------------------------------------------------------------------- measuring
def best_time(fn: Callable[[], Any], repeat: int) -> tuple[tuple[float, float], Any]:
    """``((wall, cpu), result)``: the best wall time of ``repeat`` calls after one warm-up
    call, and the CPU time (all threads) of that call."""
    out = fn()  # warm-up (imports, lookup tables)
    best, best_cpu = math.inf, math.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if wall < best:
            best, best_cpu = wall, cpu
    return (best, best_cpu), out


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


PAIRS = {
    "512x512x300": ((512, 512, 300), (0.8, 0.8, 2.5), (205.0, 190.0, 380.0), (95.0, 75.0, 80.0), 1),
    "128^3": ((128, 128, 128), (1.0, 1.0, 1.0), (64.0, 62.0, 66.0), (40.0, 32.0, 36.0), 2),
}


def make_pair(name):
    shape, sp, center, radii, seed = PAIRS[name]
    return (*organ_pair(shape, sp, center, radii, seed), sp)


def tool_call(tool: str, ref, pred, sp, threads):
    """A zero-argument callable running ``tool`` once (used by the memory children)."""
    if tool.startswith("medlens-"):
        return lambda: full_set(ref, pred, sp, tool.split("-", 1)[1], threads)
    if tool == "deepmind":
        dm = load_deepmind()
        return lambda: quiet(dm.compute_surface_distances)(ref, pred, sp)
    if tool == "monai-hd95":
        torch, metrics = load_monai()
        yt, yp = torch.from_numpy(ref)[None, None], torch.from_numpy(pred)[None, None]
        return quiet(lambda: metrics.compute_hausdorff_distance(yp, yt, include_background=True, spacing=sp, percentile=95))
    if tool == "medpy-hd95":
        binary = load_medpy()
        return lambda: binary.hd95(pred, ref, voxelspacing=sp)
    raise ValueError(tool)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _memory_child(tool, pair, threads, q):
    ref, pred, sp = make_pair(pair)
    fn = tool_call(tool, ref, pred, sp, threads)
    fn()  # warm-up: imports and lookup tables are not the call's memory
    try:  # reset the peak-RSS mark (VmHWM) so that building the pair does not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kib("VmRSS")
        fn()
        q.put(_status_kib("VmHWM") - base)
    except OSError:
        base = _rss_kib()
        fn()
        q.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)


def peak_extra_mib(tool: str, pair: str, threads) -> float:
    """Peak resident memory added by one call, measured in a fresh (spawned) process:
    the peak resident size (VmHWM, reset just before the call) minus the resident size
    just before it."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(tool, pair, threads, q))
    proc.start()
    try:
        val = q.get(timeout=600)
    finally:
        proc.join(timeout=60)
    return val / 1024.0


def quiet(fn):
    def wrapped(*a, **k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*a, **k)

    return wrapped


# --------------------------------------------------------------------------- peers
def load_deepmind():
    try:
        # surface-distance 0.1 uses the aliases np.Inf / np.NaN removed in NumPy 2.0
        np.Inf = np.inf  # noqa: NPY201
        np.NaN = np.nan  # noqa: NPY201
        import surface_distance as sd
    except ImportError:
        return None
    return sd


def load_monai():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
            from monai import metrics
    except ImportError:
        return None
    return torch, metrics


def load_medpy():
    try:
        from medpy.metric import binary
    except ImportError:
        return None
    return binary


# --------------------------------------------------------------------------- one pair
Row = tuple[str, str, str, tuple[float, float], "tuple[float, float] | None", str]


class Bench:
    """Collects table rows, memory rows and value mismatches."""

    def __init__(self, repeat: int, threads: int | None, memory: bool) -> None:
        self.repeat, self.threads, self.memory = repeat, threads, memory
        self.rows: list[Row] = []
        self.mem: list[tuple[str, str, float, float]] = []
        self.failures: list[str] = []

    def check(self, label: str, ours: Any, theirs: Any) -> str:
        ok = bool(np.allclose(ours, theirs, rtol=RTOL, atol=0.0))
        if not ok:
            self.failures.append(f"{label}: medlens {ours} vs peer {theirs}")
        return "yes" if ok else "NO"

    def measure_memory(self, pair: str, what: str, tool: str, nbytes: int) -> None:
        if self.memory:
            mib = peak_extra_mib(tool, pair, self.threads)
            self.mem.append((pair, what, mib, mib * 2**20 / nbytes))


def full_set(ref, pred, sp, method, threads):
    """medlens: Dice, HD, HD95 (max of directed), ASSD, MASD, NSD@2mm from one distance pass."""
    rows = mm.segmentation_metrics(
        ref,
        pred,
        spacing=sp,
        regions=[mm.Region("organ", (1,))],
        metrics=["dice", "hd", "hd95", "assd", "masd", "nsd@2.0"],
        method=method,
        threads=threads,
    )
    v = {r.metric: r.value for r in rows}
    return (v["dice"], v["hd"], v["hd95"], v["assd"], v["masd"], v["nsd@2.0"])


def run_pair(b: Bench, name, ref, pred, sp, dm, mon, medpy) -> None:
    rep, thr = b.repeat, b.threads
    nbytes = ref.nbytes + pred.nbytes
    vol = math.prod(sp) / 1000
    print(
        f"\n== {name}, spacing {sp} mm: reference {ref.sum() * vol:.0f} ml, "
        f"prediction {pred.sum() * vol:.0f} ml, inputs {nbytes / 2**20:.0f} MiB"
    )
    kw = {"spacing": sp, "threads": thr}
    t_full_s, v_s = best_time(lambda: full_set(ref, pred, sp, "surfel", thr), rep)
    t_full_b, v_b = best_time(lambda: full_set(ref, pred, sp, "border", thr), rep)
    thin_fns: dict[str, Callable[[str], float]] = {
        "hd": lambda m: mm.hausdorff_distance(ref, pred, method=m, **kw),
        "hd95": lambda m: mm.percentile_hausdorff_distance(
            ref, pred, method=m, pooling="max_directed", **kw
        ),
        "hd95p": lambda m: mm.percentile_hausdorff_distance(
            ref, pred, method=m, pooling="pooled", **kw
        ),
        "assd": lambda m: mm.average_symmetric_surface_distance(ref, pred, method=m, **kw),
        "masd": lambda m: mm.mean_average_surface_distance(ref, pred, method=m, **kw),
        "nsd": lambda m: mm.normalized_surface_distance(ref, pred, method=m, tolerance=2.0, **kw),
    }
    thin = {
        (key, m): best_time(lambda fn=fn, m=m: fn(m), rep)
        for key, fn in thin_fns.items()
        for m in ("surfel", "border")
    }
    fmt = "Dice {:.4f} HD {:.3f} HD95 {:.3f} ASSD {:.3f} MASD {:.3f} NSD@2 {:.4f}"
    print("medlens surfel: " + fmt.format(*v_s))
    print("medlens border: " + fmt.format(*v_b) + f" HD95(pooled) {thin[('hd95p', 'border')][1]:.3f}")
    b.measure_memory(name, "medlens full set, surfel", "medlens-surfel", nbytes)
    b.measure_memory(name, "medlens full set, border", "medlens-border", nbytes)

    if dm is not None:

        def dm_full():
            d = quiet(dm.compute_surface_distances)(ref, pred, sp)
            a_r, a_p = d["surfel_areas_gt"], d["surfel_areas_pred"]
            r_, p_ = d["distances_gt_to_pred"], d["distances_pred_to_gt"]
            return (
                dm.compute_dice_coefficient(ref, pred),
                dm.compute_robust_hausdorff(d, 100),
                dm.compute_robust_hausdorff(d, 95),
                (np.sum(a_r * r_) + np.sum(a_p * p_)) / (np.sum(a_r) + np.sum(a_p)),
                float(np.mean(dm.compute_average_surface_distance(d))),
                dm.compute_surface_dice_at_tolerance(d, 2.0),
            )

        t_dm, v_dm = best_time(dm_full, rep)
        ok = b.check(f"{name} full set vs DeepMind", v_s, v_dm)
        b.rows.append((name, "full set: Dice, HD, HD95, ASSD, MASD, NSD@2mm (surfel)",
                       "DeepMind compute_surface_distances + reductions", t_full_s, t_dm, ok))  # fmt: skip
        b.measure_memory(name, "DeepMind compute_surface_distances", "deepmind", nbytes)

    if mon is not None:
        torch, metrics = mon
        yt = torch.from_numpy(ref)[None, None]
        yp = torch.from_numpy(pred)[None, None]
        opts = {"include_background": True, "spacing": sp}
        calls = {
            "hd": ("HD", "MONAI compute_hausdorff_distance",
                   lambda: metrics.compute_hausdorff_distance(yp, yt, **opts), v_b[1]),
            "hd95": ("HD95 (max of directed)", "MONAI compute_hausdorff_distance(percentile=95)",
                     lambda: metrics.compute_hausdorff_distance(yp, yt, percentile=95, **opts), v_b[2]),
            "assd": ("ASSD (pooled)", "MONAI compute_average_surface_distance(symmetric=True)",
                     lambda: metrics.compute_average_surface_distance(yp, yt, symmetric=True, **opts), v_b[3]),
            "nsd": ("NSD@2mm (voxel counts)", "MONAI compute_surface_dice",
                    lambda: metrics.compute_surface_dice(yp, yt, [2.0], **opts), v_b[5]),
        }  # fmt: skip
        total = [0.0, 0.0]
        for key, (label, peer, call, ours) in calls.items():
            t_m, v_m = best_time(quiet(call), max(1, rep - 1))
            total = [total[0] + t_m[0], total[1] + t_m[1]]
            ok = b.check(f"{name} {key} vs MONAI", ours, float(v_m.reshape(-1)[0]))
            b.rows.append((name, f"{label} (border), one metric", peer, thin[(key, "border")][0], t_m, ok))
        b.rows.append((name, "HD, HD95, ASSD, NSD@2mm (border), full set", "MONAI, 4 calls",
                       t_full_b, (total[0], total[1]), "yes"))  # fmt: skip
        b.measure_memory(name, "MONAI compute_hausdorff_distance(percentile=95)", "monai-hd95", nbytes)

    if medpy is not None and ref.size <= 128**3:
        mp_calls = {
            "hd": ("HD", lambda: medpy.hd(pred, ref, voxelspacing=sp), v_b[1]),
            "hd95p": ("HD95 (pooled)", lambda: medpy.hd95(pred, ref, voxelspacing=sp),
                      thin[("hd95p", "border")][1]),
            "assd": ("ASSD (pooled)", lambda: medpy.assd(pred, ref, voxelspacing=sp), v_b[3]),
        }  # fmt: skip
        for key, (label, call, ours) in mp_calls.items():
            t_p, v_p = best_time(call, 1)
            ok = b.check(f"{name} {key} vs MedPy", ours, v_p)
            b.rows.append((name, f"{label} (border), one metric", "MedPy", thin[(key, "border")][0], t_p, ok))
        b.measure_memory(name, "MedPy hd95", "medpy-hd95", nbytes)

    for key, label in (("hd", "HD"), ("hd95", "HD95 (max of directed)"), ("assd", "ASSD"),
                       ("masd", "MASD"), ("nsd", "NSD@2mm")):  # fmt: skip
        b.rows.append((name, f"{label} (surfel), one metric", "-", thin[(key, "surfel")][0], None, "-"))


# --------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="EDT threads (default: all CPUs)")
    ap.add_argument("--no-memory", action="store_true", help="skip the forked memory measurements")
    args = ap.parse_args()
    b = Bench(args.repeat, args.threads, not args.no_memory)

    dm, mon, medpy = load_deepmind(), load_monai(), load_medpy()
    have = {"DeepMind surface-distance": dm, "MONAI": mon, "MedPy": medpy}
    print("peers: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in have.items()))
    print(f"CPUs: {len(os.sched_getaffinity(0))}, EDT threads: {args.threads or 'all'}, repeat: {args.repeat}")
    from medlens.metrics import _nearest

    if _nearest.available():
        import numba

        print(f"medlens distances: numba {numba.__version__} offset scan (medlens.metrics._nearest)")
    else:
        print("medlens distances: numba not installed, edt / slice-wise search")
    print("load average at the start: " + " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1 / 5 / 15 min)")

    for name in PAIRS:
        t0 = time.perf_counter()
        ref, pred, sp = make_pair(name)
        print(f"\npair {name} built in {time.perf_counter() - t0:.1f} s")
        run_pair(b, name, ref, pred, sp, dm, mon, medpy)
        del ref, pred

    print(f"\nload average after the run: {os.getloadavg()[0]:.1f} (CPUs: {len(os.sched_getaffinity(0))})")
    print("wall: best of the repeats; cpu: process CPU time of that call, all threads")
    print("\n| pair | metric (definition) | peer | medlens wall / cpu (s) | peer wall / cpu (s) | speed-up wall / cpu | values agree |")
    print("|---|---|---|---:|---:|---:|:---:|")
    for name, metric, peer, t_ours, t_peer, ok in b.rows:
        ours_s = f"{t_ours[0]:.3f} / {t_ours[1]:.3f}"
        if t_peer is None:
            peer_s = ratio = "-"
        else:
            peer_s = f"{t_peer[0]:.3f} / {t_peer[1]:.3f}"
            ratio = f"{t_peer[0] / t_ours[0]:.1f}x / {t_peer[1] / max(t_ours[1], 1e-9):.1f}x"
        print(f"| {name} | {metric} | {peer} | {ours_s} | {peer_s} | {ratio} | {ok} |")
    if b.mem:
        print("\n| pair | call | peak extra memory (MiB) | x the two inputs |")
        print("|---|---|---:|---:|")
        for name, what, mib, ratio in b.mem:
            print(f"| {name} | {what} | {mib:.0f} | {ratio:.2f} |")
    if b.failures:
        print("\nVALUE MISMATCHES:")
        for f in b.failures:
            print("  " + f)
        return 1
    print("\nall matching definitions agree (rtol 1e-6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
