"""Experiment planning: nnU-Net's rules plus a CPU time budget.

The rules follow nnU-Net v2's default experiment planner (Isensee et al., Nature
Methods 2021; ``default_experiment_planner.py``), reimplemented:

* target spacing: the median spacing per axis; if one axis is more than 3x coarser
  than the others *and* has 3x fewer voxels, its target is the 10th percentile of
  that axis's spacings (never finer than the other axes);
* pooling topology from spacing: an axis is pooled while its current spacing is
  less than twice the finest one and its feature map stays >= 8 voxels (so >= 4
  after pooling); axes much coarser than the finest get kernel size 1;
* initial patch: the aspect ratio of 1/spacing scaled to the volume of a 256^3
  patch (3D) or 2048^2 (2D), clipped to the median shape, then shrunk along the
  axis largest relative to the median shape until the memory estimate fits;
* features 32 doubling per stage, capped at 320 (3D) / 512 (2D); batch size >= 2
  and covering at most 5% of the dataset's voxels;
* normalisation ``CT`` for CT channels, z-score otherwise, using the non-zero mask
  when cropping to non-zero removed >= 25% of the voxels (median over cases);
* 3D low resolution: spacing raised by 1.03x steps (the anisotropic axis first)
  while the patch covers < 25% of the median image.

On top, medlens plans for the CPU it runs on: a calibration run measures this
machine's forward/backward speed for U-Nets, a two-term cost model predicts the
seconds per training iteration of any configuration, and the planner walks
from the full-resolution configuration towards coarser spacings and narrower
networks until the iteration count that fits the time budget reaches a minimum.
Every decision is recorded in ``Plans.explain``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import MedlensError
from medlens.segmentation._config import NetworkConfig
from medlens.segmentation._fingerprint import DatasetFingerprint

__all__ = [
    "ANISOTROPY_THRESHOLD",
    "Calibration",
    "Configuration",
    "PlanError",
    "Plans",
    "estimate_memory_bytes",
    "estimate_seconds_per_iteration",
    "fullres_target_spacing",
    "initial_patch_size",
    "plan_experiment",
    "pool_and_conv_props",
]

ANISOTROPY_THRESHOLD = 3.0
MIN_FEATURE_MAP_SIZE = 4
BASE_FEATURES = 32
MAX_FEATURES_3D = 320
MAX_FEATURES_2D = 512
LOWRES_COVERAGE = 0.25
MAX_DATASET_COVERED = 0.05


class PlanError(MedlensError, ValueError):
    """Planning is impossible with the given data or budgets."""


@dataclass(frozen=True)
class Calibration:
    """Measured cost model of this machine's training speed.

    ``seconds(iteration) = overhead + batch * (per_activation * A + per_flop * F)``
    with ``A`` the number of feature-map values a forward pass produces and ``F`` its
    multiply-adds; fitted by least squares to timed forward/backward passes.
    """

    per_activation: float
    per_flop: float
    overhead: float
    threads: int
    measurements: tuple[tuple[str, float], ...] = ()

    @classmethod
    def default(cls) -> Calibration:
        """A conservative guess for 2 CPU cores (used when no calibration ran)."""
        return cls(per_activation=1.0e-8, per_flop=1.5e-11, overhead=0.05, threads=2)


def _prod(x: Sequence[float] | np.ndarray) -> float:
    return float(np.prod(np.asarray(x, dtype=np.float64)))


def fullres_target_spacing(
    spacings: np.ndarray, shapes: np.ndarray, *, anisotropy_threshold: float = ANISOTROPY_THRESHOLD
) -> tuple[tuple[float, ...], str]:
    """Median target spacing with nnU-Net's anisotropy rule; returns (spacing, why).

    Examples
    --------
    >>> sp = np.array([[0.8, 0.8, 5.0], [0.7, 0.7, 5.0], [0.9, 0.9, 1.5]])
    >>> sh = np.array([[512, 512, 40], [512, 512, 44], [512, 512, 130]])
    >>> fullres_target_spacing(sp, sh)[0]
    (0.8, 0.8, 2.2)
    """
    target = np.percentile(spacings, 50, axis=0)
    size = np.percentile(shapes, 50, axis=0)
    why = f"median spacing {tuple(round(float(t), 4) for t in target)}"
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    if others:
        aniso_spacing = target[worst] > anisotropy_threshold * max(target[others])
        aniso_voxels = size[worst] * anisotropy_threshold < min(size[others])
        if aniso_spacing and aniso_voxels:
            t = float(np.percentile(spacings[:, worst], 10))
            if t < max(target[others]):
                t = max(float(max(target[others])), t) + 1e-5
            target[worst] = t
            why += (
                f"; axis {worst} is >{anisotropy_threshold:g}x coarser and has "
                f">{anisotropy_threshold:g}x fewer voxels, so its target is the 10th "
                f"percentile of its spacings ({t:.4g} mm)"
            )
    # round away float noise from percentiles
    return tuple(float(round(t, 6)) for t in target), why


def pool_and_conv_props(
    spacing: Sequence[float] | np.ndarray,
    patch_size: Sequence[int],
    *,
    min_feature_map_size: int = MIN_FEATURE_MAP_SIZE,
    max_pools: int = 999,
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], tuple[int, ...], tuple[int, ...]]:
    """Pooling topology from spacing (nnU-Net's rule).

    Returns
    -------
    strides : list of tuple of int
        Per stage, first stage all ones.
    kernel_sizes : list of tuple of int
        Conv kernel per stage.
    patch_size : tuple of int
        The patch size rounded up to a multiple of the total stride.
    divisor : tuple of int
        Total stride per axis.

    Examples
    --------
    >>> s, k, p, d = pool_and_conv_props((1.0, 1.0, 3.0), (160, 160, 48))
    >>> s[:3], k[:2], p, d
    ([(1, 1, 1), (2, 2, 1), (2, 2, 2)], [(3, 3, 1), (3, 3, 3)], (160, 160, 48), (32, 32, 8))
    """
    dim = len(spacing)
    cur_sp = [float(s) for s in spacing]
    cur_sz = [int(s) for s in patch_size]
    strides: list[tuple[int, ...]] = [(1,) * dim]
    kernels: list[tuple[int, ...]] = []
    n_pool = [0] * dim
    while True:
        min_sp = min(cur_sp)
        # axes whose spacing is within a factor 2 of each other form the "3x3x3" group
        group: list[int] = []
        for a in range(dim):
            partners = [
                b for b in range(dim) if cur_sp[b] / cur_sp[a] < 2 and cur_sp[a] / cur_sp[b] < 2
            ]
            if len(partners) > len(group):
                group = partners
        kernels.append(tuple(3 if a in group else 1 for a in range(dim)))
        pool_axes = [
            a
            for a in range(dim)
            if cur_sp[a] / min_sp < 2 and cur_sz[a] >= 2 * min_feature_map_size
        ]
        if not pool_axes or max(n_pool) >= max_pools:
            break
        stride = tuple(2 if a in pool_axes else 1 for a in range(dim))
        for a in pool_axes:
            n_pool[a] += 1
            cur_sp[a] *= 2
            cur_sz[a] = math.ceil(cur_sz[a] / 2)
        strides.append(stride)
    # the bottleneck kernel is the last one computed; kernels has len(strides) entries
    divisor = tuple(2**n for n in n_pool)
    padded = tuple(int(math.ceil(p / d) * d) for p, d in zip(patch_size, divisor, strict=True))
    return strides, kernels[: len(strides)], padded, divisor


def initial_patch_size(
    spacing: Sequence[float] | np.ndarray, median_shape: Sequence[float] | np.ndarray
) -> tuple[int, ...]:
    """nnU-Net's starting patch: 1/spacing aspect, 256^3 (3D) or 2048^2 (2D) volume, clipped.

    Examples
    --------
    >>> initial_patch_size((1.0, 1.0, 1.0), (300, 300, 100))
    (256, 256, 100)
    """
    tmp = 1.0 / np.asarray(spacing, dtype=np.float64)
    ref = 256.0**3 if len(spacing) == 3 else 2048.0**2
    init = [round(float(t)) for t in tmp * (ref / _prod(tmp)) ** (1.0 / len(spacing))]
    return tuple(int(min(i, m)) for i, m in zip(init, median_shape, strict=True))


def _features(n_stages: int, dim: int, base: int) -> tuple[int, ...]:
    cap = MAX_FEATURES_3D if dim == 3 else MAX_FEATURES_2D
    return tuple(min(cap, base * 2**i) for i in range(n_stages))


def _stage_shapes(patch: Sequence[int], strides: Sequence[Sequence[int]]) -> list[list[int]]:
    shapes = []
    cur = list(patch)
    for s in strides:
        cur = [math.ceil(c / st) for c, st in zip(cur, s, strict=True)]
        shapes.append(list(cur))
    return shapes


def _cost_terms(net: NetworkConfig, patch: Sequence[int]) -> tuple[float, float]:
    """(activations, multiply-adds) of one forward pass for one sample."""
    acts = 0.0
    flops = 0.0
    shapes = _stage_shapes(patch, net.strides)
    cin = net.in_channels
    n_conv = net.convs_per_stage
    for s, (shape, f) in enumerate(zip(shapes, net.features, strict=True)):
        v = _prod(shape)
        k = _prod(net.kernel_sizes[s])
        # encoder convs
        flops += v * k * (cin * f + (n_conv - 1) * f * f)
        acts += v * f * n_conv
        cin = f
        if s > 0:
            fu = net.features[s - 1]
            vu = _prod(shapes[s - 1])
            ku = _prod(net.kernel_sizes[s - 1])
            # transposed conv + decoder convs (first takes 2*fu) + head
            flops += vu * fu * f + vu * ku * (2 * fu * fu + (n_conv - 1) * fu * fu)
            acts += vu * fu * (n_conv + 2)
    if net.architecture == "mednext":
        # depthwise k^d + two 1x1 with expansion e: ~ (k^d + 2e f) per value
        e = net.mednext_expansion
        kk = net.mednext_kernel**net.spatial_dims
        flops = sum(
            _prod(sh) * f * (kk + 2 * e * f) * 2 * n_conv
            for sh, f in zip(shapes, net.features, strict=True)
        )
        acts *= 1 + e
    return acts, flops


def estimate_seconds_per_iteration(
    net: NetworkConfig, patch: Sequence[int], batch_size: int, calibration: Calibration
) -> float:
    """Predicted seconds of one training iteration (forward + backward + step)."""
    a, f = _cost_terms(net, patch)
    c = calibration
    return float(c.overhead + batch_size * (c.per_activation * a + c.per_flop * f))


def estimate_memory_bytes(net: NetworkConfig, patch: Sequence[int], batch_size: int) -> float:
    """Training memory estimate in bytes.

    Activations kept for backward (x3 for norm, non-linearity and gradients),
    float32, plus parameters and optimiser state.
    """
    a, _ = _cost_terms(net, patch)
    params = 0.0
    cin = net.in_channels
    for s, f in enumerate(net.features):
        k = _prod(net.kernel_sizes[s])
        params += k * (cin * f + (net.convs_per_stage - 1) * f * f)
        cin = f
    return float(4.0 * (3.0 * a * batch_size + 3.0 * 2.0 * params))


@dataclass(frozen=True)
class Configuration:
    """One trainable configuration (``2d``, ``3d_fullres``, ``3d_lowres`` ...)."""

    name: str
    spacing: tuple[float, ...]
    patch_size: tuple[int, ...]
    batch_size: int
    median_shape: tuple[int, ...]
    network: NetworkConfig
    normalization: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]
    iterations: int
    iterations_per_epoch: int
    seconds_per_iteration: float
    memory_bytes: float
    slice_axis: int | None = None
    learning_rate: float = 0.01
    optimizer: str = "sgd"

    @property
    def spatial_dims(self) -> int:
        """2 or 3."""
        return len(self.patch_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        d = asdict(self)
        d["network"] = self.network.to_dict()
        for k in ("spacing", "patch_size", "median_shape", "normalization", "use_mask_for_norm"):
            d[k] = list(d[k])
        d["estimated_training_minutes"] = round(
            self.iterations * self.seconds_per_iteration / 60, 2
        )
        d["memory_gb"] = round(self.memory_bytes / 2**30, 3)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Configuration:
        """Inverse of :meth:`to_dict`."""
        kw = {k: v for k, v in d.items() if k not in ("estimated_training_minutes", "memory_gb")}
        kw["network"] = NetworkConfig.from_dict(d["network"])
        for k in ("spacing", "patch_size", "median_shape", "normalization", "use_mask_for_norm"):
            kw[k] = tuple(kw[k])
        return cls(**kw)


@dataclass(frozen=True)
class Plans:
    """The plan of a dataset: one or more configurations and why they were chosen."""

    dataset_name: str
    channel_names: tuple[str, ...]
    labels: dict[str, int | tuple[int, ...]]
    regions_class_order: tuple[int, ...] | None
    intensity: tuple[dict[str, float], ...]
    configurations: dict[str, Configuration]
    default_configuration: str
    time_budget_s: float | None
    memory_budget_bytes: float
    calibration: Calibration
    explain: tuple[str, ...] = ()
    orientation: str = "RAS"
    anisotropy_threshold: float = ANISOTROPY_THRESHOLD
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def region_based(self) -> bool:
        """Whether labels are regions (sigmoid outputs)."""
        return any(isinstance(v, tuple) for v in self.labels.values())

    @property
    def foreground(self) -> dict[str, int | tuple[int, ...]]:
        """Labels without background, in output-channel order for regions."""
        return {k: v for k, v in self.labels.items() if v != 0}

    @property
    def n_outputs(self) -> int:
        """Network output channels."""
        if self.region_based:
            return len(self.foreground)
        vals: set[int] = {0}
        for v in self.labels.values():
            vals.update(v if isinstance(v, tuple) else (v,))
        return len(vals)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (plans.json)."""
        return {
            "dataset_name": self.dataset_name,
            "channel_names": list(self.channel_names),
            "labels": {k: list(v) if isinstance(v, tuple) else v for k, v in self.labels.items()},
            "regions_class_order": list(self.regions_class_order)
            if self.regions_class_order
            else None,
            "orientation": self.orientation,
            "anisotropy_threshold": self.anisotropy_threshold,
            "foreground_intensity_per_channel": list(self.intensity),
            "default_configuration": self.default_configuration,
            "time_budget_s": self.time_budget_s,
            "memory_budget_gb": round(self.memory_budget_bytes / 2**30, 3),
            "calibration": asdict(self.calibration),
            "configurations": {k: c.to_dict() for k, c in self.configurations.items()},
            "explain": list(self.explain),
            "extra": self.extra,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write plans.json (atomically, indented)."""
        from medlens._atomic import atomic_write_json

        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Plans:
        """Read plans.json."""
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise PlanError(f"{p}: cannot read plans ({e})") from e
        cal = d["calibration"]
        cal["measurements"] = tuple(tuple(m) for m in cal.get("measurements", ()))
        return cls(
            dataset_name=d["dataset_name"],
            channel_names=tuple(d["channel_names"]),
            labels={k: tuple(v) if isinstance(v, list) else v for k, v in d["labels"].items()},
            regions_class_order=tuple(d["regions_class_order"])
            if d["regions_class_order"]
            else None,
            intensity=tuple(d["foreground_intensity_per_channel"]),
            configurations={k: Configuration.from_dict(c) for k, c in d["configurations"].items()},
            default_configuration=d["default_configuration"],
            time_budget_s=d["time_budget_s"],
            memory_budget_bytes=float(d["memory_budget_gb"]) * 2**30,
            calibration=Calibration(**cal),
            explain=tuple(d.get("explain", ())),
            orientation=d.get("orientation", "RAS"),
            anisotropy_threshold=d.get("anisotropy_threshold", ANISOTROPY_THRESHOLD),
            extra=d.get("extra", {}),
        )

    def with_configuration(self, config: Configuration) -> Plans:
        """Copy with one configuration replaced/added."""
        cfgs = dict(self.configurations)
        cfgs[config.name] = config
        return replace(self, configurations=cfgs)


def _build_net(
    spacing: Sequence[float] | np.ndarray,
    patch: Sequence[int],
    in_ch: int,
    out_ch: int,
    base: int,
    architecture: str,
) -> tuple[NetworkConfig, tuple[int, ...], tuple[int, ...]]:
    strides, kernels, padded, divisor = pool_and_conv_props(spacing, patch)
    net = NetworkConfig(
        spatial_dims=len(spacing),
        in_channels=in_ch,
        out_channels=out_ch,
        features=_features(len(strides), len(spacing), base),
        strides=tuple(strides),
        kernel_sizes=tuple(kernels),
        architecture=architecture,  # type: ignore[arg-type]
    )
    return net, padded, divisor


def _shrink_axis(
    patch: Sequence[int], median: Sequence[float] | np.ndarray, divisor: Sequence[int]
) -> int:
    ratios = [p / m for p, m in zip(patch, median, strict=True)]
    return int(np.argsort(ratios)[-1])


def _nnunet_configuration(
    spacing: Sequence[float] | np.ndarray,
    median_shape: Sequence[float] | np.ndarray,
    in_ch: int,
    out_ch: int,
    n_voxels_dataset: float,
    memory_budget: float,
    base: int,
    architecture: str,
) -> tuple[NetworkConfig, tuple[int, ...], int, float]:
    """nnU-Net's patch/topology/batch logic with our memory estimate."""
    patch = initial_patch_size(spacing, median_shape)
    net, patch, divisor = _build_net(spacing, patch, in_ch, out_ch, base, architecture)
    mem = estimate_memory_bytes(net, patch, 2)
    while mem > memory_budget:
        ax = _shrink_axis(patch, median_shape, divisor)
        trial = list(patch)
        trial[ax] -= divisor[ax]
        _, _, _, div2 = pool_and_conv_props(spacing, trial)
        p2 = list(patch)
        p2[ax] -= div2[ax]
        if p2[ax] < 4:
            break
        net, patch, divisor = _build_net(spacing, p2, in_ch, out_ch, base, architecture)
        mem = estimate_memory_bytes(net, patch, 2)
    bs = max(2, round(2 * memory_budget / max(mem, 1.0)))
    bs5 = round(n_voxels_dataset * MAX_DATASET_COVERED / _prod(patch))
    bs = max(min(bs, bs5), 2)
    return net, patch, bs, mem


def _normalization(fp: DatasetFingerprint) -> tuple[tuple[str, ...], tuple[bool, ...], str]:
    schemes = tuple("CT" if c.strip().upper() == "CT" else "zscore" for c in fp.channel_names)
    rel = fp.median_relative_size_after_crop
    use_mask = tuple(s != "CT" and rel < 0.75 for s in schemes)
    why = (
        f"normalisation {list(schemes)}: CT channels are clipped to the foreground "
        f"0.5/99.5 percentiles and z-scored with the foreground mean/std; others get a "
        f"per-image z-score. Cropping to non-zero kept {rel:.0%} of the voxels (median), "
        + (
            "< 75%, so the z-score uses the non-zero mask"
            if any(use_mask)
            else ">= 75%, so the z-score uses the whole crop"
        )
    )
    return schemes, use_mask, why


def _new_shape(shape: Sequence[float], old: Sequence[float], new: Sequence[float]) -> np.ndarray:
    return np.round(np.asarray(shape) * np.asarray(old) / np.asarray(new))


def plan_experiment(
    fingerprint: DatasetFingerprint,
    *,
    time_budget_s: float | None = None,
    memory_budget_gb: float = 8.0,
    calibration: Calibration | None = None,
    architecture: str = "unet",
    min_iterations: int = 300,
    max_iterations: int = 250_000,
    reserve_fraction: float = 0.25,
    regions_class_order: Sequence[int] | None = None,
    min_patch_coverage: float = LOWRES_COVERAGE,
) -> Plans:
    """Plan 2D and 3D configurations for a dataset, to a memory and a time budget.

    Parameters
    ----------
    fingerprint : DatasetFingerprint
        From :func:`dataset_fingerprint`.
    time_budget_s : float, optional
        Wall-clock budget for training one model, seconds. ``None`` plans
        nnU-Net's fixed schedule (1000 epochs x 250 iterations) with nnU-Net's
        configurations unchanged.
    memory_budget_gb : float
        Memory the training may use (nnU-Net's GPU target is 8 GB).
    calibration : Calibration, optional
        Measured speed of this machine (:func:`calibrate`); default a guess.
    architecture : {"unet", "mednext"}
        Network family.
    min_iterations : int
        The fewest training iterations a budgeted configuration may have; the
        planner coarsens spacing / narrows the network until this fits.
    reserve_fraction : float
        Share of the time budget kept for preprocessing, validation and prediction.
    min_patch_coverage : float
        Under a time budget, the smallest share of the median image a patch may
        cover before the planner prefers a coarser spacing (0.25, nnU-Net's
        3d_lowres threshold). ``1.0`` asks for whole-image patches: context
        before resolution, which suits few training cases of a large structure
        (every iteration then sees a whole case, and prediction needs few tiles).
        If no such candidate reaches ``min_iterations``, the search is redone with
        0.25 and the candidate with more iterations is kept.

    Returns
    -------
    Plans
    """
    if not fingerprint.cases:
        raise PlanError("the fingerprint holds no cases")
    cal = calibration or Calibration.default()
    mem_budget = float(memory_budget_gb) * 2**30
    explain: list[str] = []
    spacings = fingerprint.spacings
    shapes = fingerprint.shapes_after_crop
    dim = spacings.shape[1]
    in_ch = len(fingerprint.channel_names)
    region = any(isinstance(v, tuple) for v in fingerprint.labels.values())
    vals: set[int] = {0}
    for v in fingerprint.labels.values():
        vals.update(v if isinstance(v, tuple) else (v,))
    out_ch = len([v for v in fingerprint.labels.values() if v != 0]) if region else len(vals)
    target, why = fullres_target_spacing(spacings, shapes)
    explain.append(f"target spacing {target} mm: {why}")
    new_shapes = np.array(
        [_new_shape(sh, sp, target) for sh, sp in zip(shapes, spacings, strict=True)]
    )
    median_shape = np.median(new_shapes, axis=0)
    explain.append(
        f"median shape after crop and resampling: {tuple(int(m) for m in median_shape)} voxels "
        f"({len(fingerprint.cases)} cases)"
    )
    n_vox = float(_prod(median_shape) * len(fingerprint.cases))
    schemes, use_mask, why_norm = _normalization(fingerprint)
    explain.append(why_norm)

    configs: dict[str, Configuration] = {}
    nnunet_iters = 250 * 1000

    def make(
        name: str,
        spacing: Sequence[float] | np.ndarray,
        med: Sequence[float] | np.ndarray,
        base: int,
        slice_axis: int | None = None,
    ) -> Configuration:
        net, patch, bs, mem = _nnunet_configuration(
            spacing,
            med,
            in_ch,
            out_ch,
            _prod(med) * len(fingerprint.cases),
            mem_budget,
            base,
            architecture,
        )
        t = estimate_seconds_per_iteration(net, patch, bs, cal)
        return Configuration(
            name=name,
            spacing=tuple(float(s) for s in spacing),
            patch_size=patch,
            batch_size=bs,
            median_shape=tuple(round(m) for m in med),
            network=net,
            normalization=schemes,
            use_mask_for_norm=use_mask,
            iterations=nnunet_iters,
            iterations_per_epoch=250,
            seconds_per_iteration=t,
            memory_bytes=mem,
            slice_axis=slice_axis,
        )

    # --- nnU-Net configurations (unchanged rules) -------------------------------------
    is_3d = dim == 3 and min(median_shape) > 1
    if is_3d:
        full = make("3d_fullres", target, median_shape, BASE_FEATURES)
        configs["3d_fullres"] = full
        explain.append(
            f"3d_fullres (nnU-Net rules): patch {full.patch_size}, batch {full.batch_size}, "
            f"{len(full.network.features)} stages, strides {list(full.network.strides)}, "
            f"features {list(full.network.features)}; memory estimate "
            f"{full.memory_bytes / 2**30:.2f} GB <= {memory_budget_gb:g} GB"
        )
        low_sp = np.array(target, dtype=np.float64)
        low = None
        n_patch = _prod(full.patch_size)
        med_n = _prod(median_shape)
        steps = 0
        while n_patch / med_n < LOWRES_COVERAGE and steps < 200:
            mx = low_sp.max()
            if np.any(mx / low_sp > 2):
                low_sp[mx / low_sp > 2] *= 1.03
            else:
                low_sp *= 1.03
            med_low = np.asarray(target) / low_sp * median_shape
            med_n = _prod(med_low)
            low = make("3d_lowres", low_sp, np.round(med_low), BASE_FEATURES)
            n_patch = _prod(low.patch_size)
            steps += 1
        if low is not None and _prod(median_shape) / med_n >= 2:
            configs["3d_lowres"] = low
            cover = _prod(full.patch_size) / _prod(median_shape)
            explain.append(
                f"3d_lowres: the fullres patch covers {cover:.0%} "
                f"(< 25%) of the median image, so spacing rose to {low.spacing} mm, patch "
                f"{low.patch_size}"
            )
        else:
            explain.append("no 3d_lowres: the fullres patch covers >= 25% of the median image")
    slice_axis: int | None = None
    if dim == 3:
        slice_axis = int(np.argmax(target)) if not np.allclose(target, target[0]) else dim - 1
        inplane = [a for a in range(dim) if a != slice_axis]
        sp2 = [target[a] for a in inplane]
        med2 = [median_shape[a] for a in inplane]
    else:
        sp2, med2 = list(target), list(median_shape)
    c2 = make("2d", sp2, med2, BASE_FEATURES, slice_axis=slice_axis)
    configs["2d"] = c2
    explain.append(
        f"2d: slices across axis {slice_axis} (the coarsest, or the last for isotropic data), "
        f"patch {c2.patch_size}, batch {c2.batch_size}"
    )
    default = "3d_fullres" if is_3d else "2d"

    # --- CPU time budget --------------------------------------------------------------
    if time_budget_s is not None:
        train_s = float(time_budget_s) * (1.0 - reserve_fraction)
        explain.append(
            f"time budget {time_budget_s:.0f} s: {train_s:.0f} s for training "
            f"({reserve_fraction:.0%} kept for preprocessing, validation and prediction); "
            f"calibration: {cal.per_activation:.3g} s per activation, {cal.per_flop:.3g} s per "
            f"multiply-add, {cal.overhead:.3g} s overhead per iteration, {cal.threads} threads"
        )
        base_cfg = configs.get("3d_fullres") if is_3d else c2
        assert base_cfg is not None
        def search(coverage: float) -> Configuration:
            return _budget_search(
                base_cfg,
                target,
                median_shape,
                len(fingerprint.cases),
                in_ch,
                out_ch,
                schemes,
                use_mask,
                train_s,
                mem_budget,
                cal,
                architecture,
                min_iterations,
                max_iterations,
                explain,
                slice_axis if not is_3d else None,
                min_coverage=coverage,
            )

        chosen = search(min_patch_coverage)
        if chosen.iterations < min_iterations and min_patch_coverage > LOWRES_COVERAGE:
            # the spacing cannot coarsen far enough for whole-image patches to fit the
            # budget (a short axis stops it): fall back to nnU-Net's 25% coverage
            explain.append(
                f"patches covering {min_patch_coverage:.0%} of the image do not reach "
                f"{min_iterations} iterations; searching again with patches covering "
                f">= {LOWRES_COVERAGE:.0%}"
            )
            second = search(LOWRES_COVERAGE)
            if second.iterations > chosen.iterations:
                chosen = second
        configs[chosen.name] = chosen
        default = chosen.name
    explain.append(f"default configuration: {default}")
    return Plans(
        dataset_name=fingerprint.name,
        channel_names=fingerprint.channel_names,
        labels=dict(fingerprint.labels),
        regions_class_order=tuple(regions_class_order) if regions_class_order else None,
        intensity=tuple(asdict(s) for s in fingerprint.intensity),
        configurations=configs,
        default_configuration=default,
        time_budget_s=time_budget_s,
        memory_budget_bytes=mem_budget,
        calibration=cal,
        explain=tuple(explain),
        extra={"n_training_cases": len(fingerprint.cases), "n_voxels_dataset": n_vox},
    )


def _coverage(patch: Sequence[int], median: Sequence[float] | np.ndarray) -> float:
    """Share of the median image inside one patch (per axis at most 1, multiplied).

    Examples
    --------
    >>> _coverage((64, 64, 64), (58, 70, 58)), _coverage((64, 80, 64), (58, 70, 58))
    (0.9142857142857143, 1.0)
    """
    return float(np.prod([min(1.0, p / max(m, 1.0)) for p, m in zip(patch, median, strict=True)]))


def _coarsened_spacing(target: Sequence[float] | np.ndarray, factor: float) -> np.ndarray:
    """Candidate spacing of the budget search: the finer axes coarsen first.

    As nnU-Net's lowres search, axes finer than the coarsest one are raised by
    ``factor`` up to the coarsest spacing; once every axis would reach it, all
    are scaled together.

    Examples
    --------
    >>> _coarsened_spacing((0.8, 0.8, 3.0), 2.0).tolist()
    [1.6, 1.6, 3.0]
    >>> _coarsened_spacing((1.0, 1.0, 1.0), 2.0).tolist()
    [2.0, 2.0, 2.0]
    """
    t = np.asarray(target, dtype=np.float64)
    sp = t * factor
    if factor > 1.0:
        mx = float(np.max(t))
        sp = np.maximum(t, np.minimum(mx, t * factor))
        if np.allclose(sp, t) or np.all(t * factor >= mx):
            sp = t * factor
    return sp


def _max_coarsening(
    target: Sequence[float] | np.ndarray,
    median_shape: Sequence[float] | np.ndarray,
    min_shape_vox: int,
) -> float:
    """Largest spacing factor that leaves every coarsened axis >= ``min_shape_vox`` voxels.

    Only the axes the factor actually coarsens count: for anisotropic data
    (0.8x0.8x3 mm, 160x160x64 voxels) the in-plane axes coarsen first and the
    thick-slice axis keeps its spacing, so its 64 voxels do not stop the search
    at x1.33 (64 / 48); the in-plane axes do, at x3.33 (160 / 48). For isotropic
    data this is the shortest axis over ``min_shape_vox``, as before.

    Examples
    --------
    >>> _max_coarsening((0.8, 0.8, 3.0), (160, 160, 64), 48)
    3.3333333333333335
    >>> _max_coarsening((1.0, 1.0, 1.0), (181, 215, 177), 48)
    3.6875
    """
    t = np.asarray(target, dtype=np.float64)
    med = np.asarray(median_shape, dtype=np.float64)
    limits = []
    for a in range(len(t)):
        f = float(med[a]) / min_shape_vox
        if f > 1.0 and _coarsened_spacing(t, f)[a] > t[a] * (1 + 1e-9):
            limits.append(f)
        elif f <= 1.0:
            # an axis already shorter than the limit may not be coarsened at all: stop
            # just before the factor at which it would start to (a finer axis: at once;
            # the coarsest axis: once every axis would reach its spacing)
            mx = float(np.max(t))
            limits.append(mx / float(np.min(t)) * (1 - 1e-6) if t[a] >= mx else 1.0)
    return max(1.0, min(limits)) if limits else 1.0


def _budget_search(
    base: Configuration,
    target: Sequence[float],
    median_shape: np.ndarray,
    n_cases: int,
    in_ch: int,
    out_ch: int,
    schemes: tuple[str, ...],
    use_mask: tuple[bool, ...],
    train_s: float,
    mem_budget: float,
    cal: Calibration,
    architecture: str,
    min_iterations: int,
    max_iterations: int,
    explain: list[str],
    slice_axis: int | None,
    min_shape_vox: int = 48,
    min_coverage: float = LOWRES_COVERAGE,
) -> Configuration:
    """Walk from the nnU-Net configuration to cheaper ones until it fits the budget."""
    dim = base.spatial_dims
    if dim == 2:
        target = base.spacing
        median_shape = np.asarray(base.median_shape, dtype=np.float64)
    tried = 0
    factor = 1.0
    widths = (32, 16, 8)
    best: Configuration | None = None
    max_factor = _max_coarsening(target, median_shape, min_shape_vox)
    while factor <= max_factor * 1.0001:
        sp = _coarsened_spacing(target, factor)
        med = np.maximum(1.0, np.round(np.asarray(target) / sp * median_shape))
        for base_f in widths:
            net, patch, bs, _mem = _nnunet_configuration(
                sp, med, in_ch, out_ch, _prod(med) * n_cases, mem_budget, base_f, architecture
            )
            bs = 2  # CPU: nnU-Net's minimum batch; larger batches only cost time
            # shrink the patch (nnU-Net's axis rule) while it still covers min_coverage
            while True:
                t = estimate_seconds_per_iteration(net, patch, bs, cal)
                iters = int(train_s / t)
                if iters >= min_iterations:
                    break
                ax = _shrink_axis(patch, med, net.divisor)
                p2 = list(patch)
                p2[ax] -= net.divisor[ax]
                if p2[ax] < 8 or _coverage(p2, med) < min(min_coverage, 0.999):
                    break
                net, patch, _ = _build_net(sp, p2, in_ch, out_ch, base_f, architecture)
                estimate_memory_bytes(net, patch, bs)
            tried += 1
            cand = Configuration(
                name=f"{dim}d_cpu",
                spacing=tuple(float(round(s, 5)) for s in sp),
                patch_size=patch,
                batch_size=bs,
                median_shape=tuple(int(m) for m in med),
                network=net,
                normalization=schemes,
                use_mask_for_norm=use_mask,
                iterations=min(max_iterations, max(1, iters)),
                iterations_per_epoch=max(1, min(250, iters // 20)),
                seconds_per_iteration=t,
                memory_bytes=estimate_memory_bytes(net, patch, bs),
                slice_axis=slice_axis,
            )
            if best is None or cand.iterations > best.iterations:
                best = cand
            if iters >= min_iterations:
                explain.append(
                    f"{cand.name}: after {tried} candidates, spacing x{factor:.2f} "
                    f"{cand.spacing} mm, base width {base_f}, patch {patch} (covers "
                    f"{_coverage(patch, med):.0%} of the median image "
                    f"{tuple(int(m) for m in med)}), "
                    f"batch {bs}: {t:.2f} s per iteration predicted, so {cand.iterations} "
                    "iterations "
                    f"fit {train_s:.0f} s (minimum {min_iterations}); finer spacing or wider "
                    f"networks predicted fewer iterations"
                )
                return cand
        if factor < max_factor:
            factor = min(factor * 1.25, max_factor)
        else:
            break
    assert best is not None
    explain.append(
        f"{best.name}: no candidate reached {min_iterations} iterations within {train_s:.0f} s; "
        f"using the one with the most ({best.iterations}, spacing {best.spacing}, patch "
        f"{best.patch_size}, base width {best.network.features[0]})"
    )
    return best
