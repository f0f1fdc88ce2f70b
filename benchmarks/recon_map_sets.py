"""One against two sets of ESPIRiT maps in medlens's automatic CS or CG-SENSE, over slices.

Quality, not speed: where an object meets the edge of the field of view along
the phase-encoding axis, one set of (periodic) ESPIRiT maps cannot follow the
coils' sensitivities and SENSE folds that error into the image; a second set
(soft SENSE, :func:`medlens.reconstruction.espirit_maps` with ``sets=2``)
covers those pixels. Every fully sampled slice of ``DATA`` (fastMRI layout,
e.g. the VarNet training files of ``benchmarks/recon_varnet.py
make-data-kmeans``, without their ``_flip`` / ``_tr`` copies and ``val``
files) gets a fastMRI equispaced mask per acceleration (``--acs`` centre
lines, a seeded offset) and is reconstructed with
:func:`~medlens.reconstruction.l1_wavelet_reconstruction` (automatic weight;
``--method sense``: :func:`~medlens.reconstruction.sense_reconstruction`,
automatic weight and count) on
:func:`~medlens.reconstruction.estimate_maps` with ``sets=1`` and
``sets=2``. Printed: PSNR in the object mask and over the field of view per
slice, and the means per group (names containing ``shoulder`` or
``abdomen``, the single real acquisitions, against the rest)::

    .venv/bin/python benchmarks/recon_map_sets.py /tmp/vn5/data/train --acs 12
    .venv/bin/python benchmarks/recon_map_sets.py /tmp/vn5/data/train --acs 12 --method sense

Results: docs/reconstruction.md, *Two sets of ESPIRiT maps*.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

import medlens.reconstruction as mlr
from medlens.io import read_fastmri
from medlens.reconstruction import equispaced_mask, estimate_maps


def _psnr(ref: np.ndarray, x: np.ndarray, where: np.ndarray) -> float:
    return float(10 * np.log10(ref.max() ** 2 / np.mean((x - ref)[where] ** 2)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="folder of fully sampled fastMRI-layout .h5 files")
    ap.add_argument("--acs", type=int, default=12, help="ACS lines (default 12)")
    ap.add_argument("--accelerations", default="4,8")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", choices=("cs-wavelet", "sense"), default="cs-wavelet")
    args = ap.parse_args(argv)
    files = sorted(
        f for f in args.data.glob("*.h5")
        if "val" not in f.name and not re.search(r"_(flip0|flip1|tr)\.h5$", f.name)
    )  # fmt: skip
    if not files:
        print(f"{args.data}: no .h5 files", file=sys.stderr)
        return 1
    rng = np.random.default_rng(args.seed)
    accs = [int(a) for a in args.accelerations.split(",")]
    rows: list[tuple[str, int, bool, list[float], list[float], bool]] = []
    for f in files:
        vol = read_fastmri(f)
        if vol.mask is not None or vol.target is None:
            continue
        k = vol.kspace[0].astype(np.complex64)
        ref = vol.target[0]
        obj = mlr.object_mask(ref)  # > 5 % of the max, closed, filled (as recon_varnet.py)
        for r in accs:
            m = equispaced_mask(k.shape[-1], r, num_low_frequencies=args.acs,
                                offset=int(rng.integers(r)))  # fmt: skip
            y = k * m
            psnr, times, used = [], [], False
            for sets in (1, 2):
                t0 = time.perf_counter()
                s = estimate_maps(y, m, "espirit", sets=sets)
                solve = (
                    mlr.sense_reconstruction if args.method == "sense"
                    else mlr.l1_wavelet_reconstruction
                )  # fmt: skip
                x = solve(y, s, mask=m)
                times.append(time.perf_counter() - t0)
                mag = mlr.rss(x) if x.ndim == 3 else np.abs(x)
                psnr += [_psnr(ref, mag, obj), _psnr(ref, mag, np.ones_like(obj))]
                used = used or s.ndim == 4
            single = "shoulder" in f.name or "abdomen" in f.name
            rows.append((f.name, r, single, psnr, times, used))
            print(f"{f.name:32s} R={r}  object {psnr[0]:6.2f} -> {psnr[2]:6.2f} dB  "
                  f"full {psnr[1]:6.2f} -> {psnr[3]:6.2f} dB  "
                  f"second set: {'yes' if used else 'no '}  "
                  f"{times[0]:.2f} -> {times[1]:.2f} s", flush=True)  # fmt: skip
    print("\n| R | slices | n | second set used | object PSNR gain: mean (min, max) "
          "| full | time |")
    print("|---|---|---|---|---|---|---|")
    for r in accs:
        for single, name in ((True, "shoulder / abdomen"), (False, "other")):
            sel = [row for row in rows if row[1] == r and row[2] == single]
            if not sel:
                continue
            gain = np.array([row[3][2] - row[3][0] for row in sel])
            full = np.array([row[3][3] - row[3][1] for row in sel])
            t1 = np.mean([row[4][0] for row in sel])
            t2 = np.mean([row[4][1] for row in sel])
            print(f"| {r} | {name} | {len(sel)} | {sum(row[5] for row in sel)} | "
                  f"{gain.mean():+.2f} ({gain.min():+.2f}, {gain.max():+.2f}) dB | "
                  f"{full.mean():+.2f} dB | {t1:.2f} -> {t2:.2f} s |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
