"""Registration: medlens vs SimpleITK's ImageRegistrationMethod vs elastix, same pairs.

Pairs: the ITK Software Guide slices of ``registration-2d`` (reference transforms
from the dataset) and the ``brain-extraction`` ITK KmeansTest T1 (128x128x62 at
2x2x3 mm, native grid) warped by a known rigid and a known affine transform.

Error: target registration error (mm) on a 5x5(x5) grid of points over the central 60 %
of the fixed image, against the known transform; mean and max. For elastix the
points are mapped with ``transformix -def`` (so no parameter convention is
reinterpreted here). Time: wall time of the registration call (medlens
``register``, after untimed warm-up calls; SimpleITK ``Execute``; the
``elastix`` process, including its start and image reading). All three use 3
pyramid levels (shrink 4, 2, 1), a linear interpolator, centre-of-mass
initialisation, MSE (Mattes MI for T1 vs PD). medlens runs with its defaults
(smoothing sigma shrink/2 voxels at every level, 0.5 at the finest, none at the
finest for MI; the fixed image's outer voxel layer left out of the metric);
SimpleITK smooths by sigma 2, 1, 0 voxels (its better setting without a mask).

``--same-domain``: SimpleITK and elastix also get a fixed mask without the
outer voxel layer (``SetMetricFixedMask``; ``-fMask`` with ``ErodeMask
false``), and SimpleITK smooths by 2, 1, 0.5 voxels (its better setting with
that mask), so that all three evaluate the metric on the same voxels.
``--peer-seeds N``: for the 3D pairs, also run SimpleITK and elastix with N
sampling seeds and print the median and range of their mean TRE.

Run:  .venv/bin/python benchmarks/registration_vs_peers.py  [--quick] [--only 3d]
      [--same-domain] [--peer-seeds 8]
Needs the Debian ``elastix`` package (requirements/registration.apt).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from medlens import datasets
from medlens.image import Image
from medlens.io import read_image, to_sitk, write_image
from medlens.registration import (
    AffineTransform,
    center_of_mass,
    register,
    rigid_transform,
    warp_image,
)

FLIP = np.array([-1.0, -1.0, 1.0])


@dataclass
class PeerOptions:
    """How the peers run: the benchmark's settings, or the same metric domain as medlens."""

    same_domain: bool = False
    seed: int | None = None  # None: the benchmark's fixed seeds (SimpleITK 1, elastix's default)


def interior_mask(image: Image) -> Image:
    """The fixed image's voxels less the outer layer (medlens's ``border_vox=1`` domain)."""
    m = np.zeros(image.spatial_shape, np.uint8)
    m[tuple(slice(1, s - 1) if s > 4 else slice(None) for s in image.spatial_shape)] = 1
    return image.with_array(m)


@dataclass
class Case:
    name: str
    fixed: Image
    moving: Image
    truth: AffineTransform
    model: str  # rigid | similarity | affine
    metric: str  # mse | mi


def grid_points(image: Image, n: int = 5) -> np.ndarray:
    axes = [np.linspace(0.2, 0.8, n) * (s - 1) for s in image.spatial_shape]
    idx = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, image.spatial_ndim)
    return image.voxel_to_world(idx)


def cases(quick: bool) -> list[Case]:
    ds = datasets.fetch("registration-2d")
    pairs = {p.pair_id: p for p in ds.pairs}
    out = []
    spec = [
        ("pd_shift13x17", "rigid", "mse"),
        ("pd_rot10", "rigid", "mse"),
        ("pd_r10x13y17", "rigid", "mse"),
        ("pd_r10x13y17s12", "similarity", "mse"),
        ("t1_pd_shift13x17", "rigid", "mi"),
        ("pd_shift13x17_dirplus30", "rigid", "mse"),
    ]
    for pid, model, metric in spec:
        p = pairs[pid]
        m = p.transform.matrix
        out.append(Case(pid, read_image(p.fixed), read_image(p.moving),
                        AffineTransform(m[:3, :3], m[:3, 3], ndim=2), model, metric))
    be = datasets.fetch("brain-extraction")
    case = next(c for c in be.cases if c.case_id == "itk_kmeanstest")
    fixed = read_image(case.images[0])
    fixed = fixed.with_array(np.asarray(fixed.array, np.float32))
    c = center_of_mass(fixed)
    rig = rigid_transform((0.08, -0.05, 0.12), (4.0, -6.0, 3.0), center=c.tolist())
    lin = rig.matrix @ np.array([[1.06, 0.03, 0.0], [0.0, 0.95, 0.02], [0.01, 0.0, 1.03]])
    aff = AffineTransform(lin, rig.translation + rig.matrix @ c - lin @ c)
    for name, t, model in (("t1_3d_rigid", rig, "rigid"), ("t1_3d_affine", aff, "affine")):
        moving = warp_image(fixed, t.inverse(), like=fixed, interpolation="bspline")
        out.append(Case(name, fixed, moving, t, model, "mse"))
    return out[:2] + out[-1:] if quick else out


def tre(case: Case, mapped: np.ndarray) -> tuple[float, float]:
    pts = grid_points(case.fixed)
    d = np.linalg.norm(mapped - case.truth.transform_points(pts), axis=1)
    return float(d.mean()), float(d.max())


# --------------------------------------------------------------------------- medlens
def run_medlens(case: Case) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    kw: dict[str, Any] = dict(model=case.model, metric=case.metric)
    res = register(case.fixed, case.moving, shrink_factors=(4, 2, 1),
                   iterations=(150, 100, 100), **kw)
    dt = time.perf_counter() - t0
    return res.transform.transform_points(grid_points(case.fixed)), dt


# --------------------------------------------------------------------------- SimpleITK
def run_sitk(case: Case, opts: PeerOptions | None = None) -> tuple[np.ndarray, float]:
    opts = opts or PeerOptions()
    f = sitk.Cast(to_sitk(case.fixed), sitk.sitkFloat32)
    m = sitk.Cast(to_sitk(case.moving), sitk.sitkFloat32)
    n = case.fixed.spatial_ndim
    base: sitk.Transform
    if case.model == "rigid":
        base = sitk.Euler2DTransform() if n == 2 else sitk.Euler3DTransform()
    elif case.model == "similarity":
        base = sitk.Similarity2DTransform() if n == 2 else sitk.Similarity3DTransform()
    else:
        base = sitk.AffineTransform(n)
    init = sitk.CenteredTransformInitializer(f, m, base,
                                             sitk.CenteredTransformInitializerFilter.MOMENTS)
    reg = sitk.ImageRegistrationMethod()
    if case.metric == "mi":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsMeanSquares()
    if n == 3:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(0.1, seed=1 if opts.seed is None else opts.seed)
    if opts.same_domain:
        reg.SetMetricFixedMask(sitk.Cast(to_sitk(interior_mask(case.fixed)), sitk.sitkUInt8))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-4,
                                                 numberOfIterations=200,
                                                 relaxationFactor=0.7)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0.5] if opts.same_domain else [2, 1, 0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(init, inPlace=False)
    t0 = time.perf_counter()
    out = reg.Execute(f, m)
    dt = time.perf_counter() - t0
    pts = grid_points(case.fixed)
    mapped = np.array([out.TransformPoint(tuple(float(v) for v in (p * FLIP)[:n]))
                       for p in pts])
    if n == 2:
        mapped = np.concatenate([mapped, np.zeros((len(mapped), 1))], axis=1)
    return mapped * FLIP, dt


# --------------------------------------------------------------------------- elastix
_ELX_TRANSFORM = {"rigid": "EulerTransform", "similarity": "SimilarityTransform",
                  "affine": "AffineTransform"}


def _elastix_params(case: Case, opts: PeerOptions) -> str:
    n = case.fixed.spatial_ndim
    metric = ("AdvancedMattesMutualInformation" if case.metric == "mi"
              else "AdvancedMeanSquares")
    return "\n".join([
        f'(FixedImageDimension {n})', f'(MovingImageDimension {n})',
        '(FixedInternalImagePixelType "float")', '(MovingInternalImagePixelType "float")',
        '(Registration "MultiResolutionRegistration")',
        '(FixedImagePyramid "FixedSmoothingImagePyramid")',
        '(MovingImagePyramid "MovingSmoothingImagePyramid")',
        '(Interpolator "LinearInterpolator")', '(ResampleInterpolator "FinalBSplineInterpolator")',
        '(FinalBSplineInterpolationOrder 1)',
        '(Resampler "DefaultResampler")',
        f'(Metric "{metric}")', '(NumberOfHistogramBins 32)',
        '(Optimizer "AdaptiveStochasticGradientDescent")',
        f'(Transform "{_ELX_TRANSFORM[case.model]}")',
        '(AutomaticScalesEstimation "true")', '(AutomaticTransformInitialization "true")',
        '(AutomaticTransformInitializationMethod "CenterOfGravity")',
        '(HowToCombineTransforms "Compose")',
        '(NumberOfResolutions 3)',
        '(ImagePyramidSchedule ' + " ".join(" ".join([str(s)] * n) for s in (4, 2, 1)) + ')',
        '(MaximumNumberOfIterations 250)',
        '(ImageSampler "RandomCoordinate")', '(NumberOfSpatialSamples 4096)',
        '(NewSamplesEveryIteration "true")',
        '(WriteResultImage "false")', '(WriteTransformParametersEachIteration "false")',
        '(ResultImagePixelType "float")',
        *(['(ErodeMask "false")'] if opts.same_domain else []),
        *([f"(RandomSeed {opts.seed})"] if opts.seed is not None else []),
    ]) + "\n"


def run_elastix(case: Case, work: Path,
                opts: PeerOptions | None = None) -> tuple[np.ndarray, float]:
    opts = opts or PeerOptions()
    d = work / case.name
    d.mkdir(parents=True, exist_ok=True)
    write_image(case.fixed, d / "fixed.mha")
    write_image(case.moving, d / "moving.mha")
    (d / "params.txt").write_text(_elastix_params(case, opts))
    cmd = ["elastix", "-f", str(d / "fixed.mha"), "-m", str(d / "moving.mha"),
           "-p", str(d / "params.txt"), "-out", str(d)]
    if opts.same_domain:
        write_image(interior_mask(case.fixed), d / "mask.mha")
        cmd += ["-fMask", str(d / "mask.mha")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    n = case.fixed.spatial_ndim
    pts = grid_points(case.fixed)
    lps = (pts * FLIP)[:, :n]
    (d / "points.txt").write_text("point\n" + f"{len(lps)}\n" + "\n".join(
        " ".join(f"{v:.6f}" for v in p) for p in lps) + "\n")
    subprocess.run(["transformix", "-def", str(d / "points.txt"), "-tp",
                    str(d / "TransformParameters.0.txt"), "-out", str(d)], check=True,
                   stdout=subprocess.DEVNULL)
    mapped = []
    for line in (d / "outputpoints.txt").read_text().splitlines():
        part = line.split("OutputPoint = [")[1].split("]")[0]
        mapped.append([float(v) for v in part.split()])
    arr = np.array(mapped)
    if n == 2:
        arr = np.concatenate([arr, np.zeros((len(arr), 1))], axis=1)
    return arr * FLIP, dt


def main() -> None:
    import torch  # imported once up front, as a long-running process would have it

    # tiny warm-up registrations (first-call costs of torch's kernels), untimed: 2D and 3D,
    # through both optimisers (Levenberg-Marquardt for MSE, Adam for MI)
    rng = np.random.default_rng(0)
    for shape in ((24, 24, 24), (48, 48)):
        warm = Image(rng.random(shape).astype(np.float32))
        for metric in ("mse", "mi"):
            register(warm, warm, model="rigid", metric=metric, shrink_factors=(2, 1),
                     iterations=3)
    del torch
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="three pairs only")
    ap.add_argument("--only", choices=["2d", "3d"], help="only the 2D or the 3D pairs")
    ap.add_argument("--same-domain", action="store_true",
                    help="peers get medlens's metric domain (fixed mask without the edge layer)")
    ap.add_argument("--peer-seeds", type=int, default=0,
                    help="3D pairs: also run the peers with this many sampling seeds")
    args = ap.parse_args()
    opts = PeerOptions(same_domain=args.same_domain)
    have_elastix = shutil.which("elastix") is not None
    rows = []
    seeds: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases(args.quick):
            if args.only and f"{case.fixed.spatial_ndim}d" != args.only:
                continue
            ml_pts, ml_t = run_medlens(case)
            sk_pts, sk_t = run_sitk(case, opts)
            ml_e, sk_e = tre(case, ml_pts), tre(case, sk_pts)
            if have_elastix and case.model != "similarity":
                ex_pts, ex_t = run_elastix(case, Path(tmp), opts)
                ex_e = tre(case, ex_pts)
            else:
                # Debian's elastix build lacks the SimilarityTransform component
                ex_t, ex_e = float("nan"), (float("nan"), float("nan"))
            rows.append((case.name, case.model, case.metric, ml_e, sk_e, ex_e, ml_t, sk_t, ex_t))
            print(f"{case.name}: medlens {ml_e[0]:.3f} mm {ml_t:.2f} s | sitk {sk_e[0]:.3f} mm "
                  f"{sk_t:.2f} s | elastix {ex_e[0]:.3f} mm {ex_t:.2f} s", flush=True)
            if args.peer_seeds and case.fixed.spatial_ndim == 3:
                spread = []
                for name, run in (("SimpleITK", run_sitk), ("elastix", None)):
                    if run is None and not have_elastix:
                        continue
                    errs = []
                    for seed in range(1, args.peer_seeds + 1):
                        o = PeerOptions(same_domain=args.same_domain, seed=seed)
                        pts = (run_sitk(case, o) if run is not None
                               else run_elastix(case, Path(tmp), o))[0]
                        errs.append(tre(case, pts)[0])
                    spread.append(f"{name} median {np.median(errs):.3f} "
                                  f"(range {min(errs):.3f}-{max(errs):.3f})")
                seeds.append(f"{case.name}, seeds 1-{args.peer_seeds}, mean TRE (mm): "
                             + "; ".join(spread))
    print()
    print("| pair | model | metric | TRE mean/max medlens (mm) | SimpleITK (mm) | elastix (mm) "
          "| time medlens (s) | SimpleITK (s) | elastix (s) | time medlens/elastix |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, model, metric, ml, sk, ex, mt, st, et in rows:
        cells = [name, model, metric, f"{ml[0]:.3f} / {ml[1]:.3f}", f"{sk[0]:.3f} / {sk[1]:.3f}",
                 f"{ex[0]:.3f} / {ex[1]:.3f}", f"{mt:.2f}", f"{st:.2f}", f"{et:.2f}",
                 f"{mt / et:.2f}"]
        cells = [c.replace("nan / nan", "n/a").replace("nan", "n/a") for c in cells]
        print("| " + " | ".join(cells) + " |")
    for line in seeds:
        print(line)


if __name__ == "__main__":
    main()
