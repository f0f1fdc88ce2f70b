"""Training: sampling, augmentation, Dice+CE, SGD/AdamW + poly LR, checkpoints, DDP.

Atomic checkpoints and exact resume, k-fold splits, optional DDP (torchrun).

Every training batch is a pure function of ``(seed, iteration, rank)``: the
sampler and the augmentation draw from generators seeded with those three
numbers. A run resumed from the checkpoint of iteration *k* (model, optimiser,
LR-schedule and torch RNG state) therefore computes exactly the batches and the
losses an uninterrupted run would have computed from *k + 1* on, whichever
data-loader worker produced them.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medlens.errors import MedlensError
from medlens.segmentation._augment import AugmentConfig, augment_batch, sample_parameters
from medlens.segmentation._loss import DeepSupervisionLoss, DiceCELoss
from medlens.segmentation._networks import build_network
from medlens.segmentation._plan import Configuration, Plans

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "kfold_split",
    "train",
]


class TrainingError(MedlensError, RuntimeError):
    """Training cannot start or resume (names the folder and the reason)."""


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run (the architecture comes from the plan).

    Parameters
    ----------
    fold : int or "all"
        Cross-validation fold, or ``"all"`` to train on every case (validation
        pseudo-Dice is then measured on training cases).
    n_folds : int
        Folds of the fixed-seed split.
    iterations : int, optional
        Override the plan's iteration count.
    iterations_per_epoch : int, optional
        Override the plan's epoch length (validation and CSV row per epoch).
    optimizer : {"sgd", "adamw"}
        SGD with Nesterov momentum 0.99, weight decay 3e-5 (nnU-Net), or AdamW.
    learning_rate : float, optional
        Default 0.01 (SGD) / 1e-3 (AdamW). Poly decay with exponent 0.9.
    oversample_foreground : float
        Share of each batch forced to contain foreground (nnU-Net 0.33).
    checkpoint_every_s : float
        Seconds between checkpoints (plus one at the end).
    time_limit_s : float, optional
        Wall-clock limit of the run (including its validation passes). After the
        5th iteration and at every epoch end the total is re-fitted: the
        iterations done plus the time left divided by the seconds per iteration
        measured since the previous fit, bounded below by ``min_iterations`` and
        above by ``max_extension`` x the planned total. The fits are recorded in
        the checkpoint and the log, so a resume keeps them.
    min_iterations : int
        Floor under the time limit: the run never stops before this many
        iterations, even when the machine is slower than the limit allows (it
        then overruns the limit, and the log says by how much).
    max_extension : float
        Under a time limit, how far beyond the planned iterations a faster than
        planned machine may go (1.0: never beyond the plan).
    num_workers : int, optional
        Data-loading processes (default: 1 on 2 cores, else cores // 2).
    threads : int, optional
        ``torch.set_num_threads`` (default: the plan's calibrated thread count,
        else the cores this process may use, divided among DDP ranks).
    validation_batches : int
        Batches of validation patches per epoch for the pseudo-Dice.
    seed : int
        Base seed.
    """

    fold: int | str = "all"
    n_folds: int = 5
    iterations: int | None = None
    iterations_per_epoch: int | None = None
    optimizer: str = "sgd"
    learning_rate: float | None = None
    weight_decay: float | None = None
    oversample_foreground: float = 0.33
    checkpoint_every_s: float = 300.0
    time_limit_s: float | None = None
    min_iterations: int = 0
    max_extension: float = 1.0
    num_workers: int | None = None
    threads: int | None = None
    validation_batches: int = 2
    seed: int = 12345
    batch_dice: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        d = asdict(self)
        return d


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    iterations: int
    seconds: float
    final_loss: float
    pseudo_dice: dict[str, float]
    log_csv: Path
    planned_iterations: int = 0
    time_limit_fits: tuple[tuple[int, int, float], ...] = ()


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def kfold_split(
    case_ids: Sequence[str], n_folds: int = 5, *, seed: int = 12345
) -> list[dict[str, list[str]]]:
    """Fixed-seed k-fold split of case ids (sorted first), as nnU-Net's splits.json.

    Examples
    --------
    >>> s = kfold_split([f"c{i}" for i in range(10)], 5)
    >>> len(s), sorted(len(f["val"]) for f in s), sorted(sum((f["val"] for f in s), []))[:3]
    (5, [2, 2, 2, 2, 2], ['c0', 'c1', 'c2'])
    """
    ids = sorted(case_ids)
    if len(ids) < n_folds:
        raise TrainingError(
            f"{len(ids)} cases cannot be split into {n_folds} folds; use fold 'all'"
        )
    rng = np.random.default_rng(seed)
    perm = [ids[i] for i in rng.permutation(len(ids))]
    folds = np.array_split(np.arange(len(ids)), n_folds)
    out = []
    for f in folds:
        val = sorted(perm[i] for i in f)
        out.append({"train": sorted(set(ids) - set(val)), "val": val})
    return out


# ---------------------------------------------------------------------------
# Patch sampling
# ---------------------------------------------------------------------------


class _Cases:
    """Lazily memory-mapped preprocessed cases."""

    def __init__(self, folder: Path, case_ids: Sequence[str]) -> None:
        self.folder = folder
        self.ids = list(case_ids)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = {}

    def get(self, cid: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        if cid not in self._cache:
            data = np.load(self.folder / f"{cid}.npy", mmap_mode="r")
            seg = np.load(self.folder / f"{cid}_seg.npy", mmap_mode="r")
            with np.load(self.folder / f"{cid}_fg.npz") as z:
                fg = {k: z[k] for k in z.files}
            self._cache[cid] = (data, seg, fg)
        return self._cache[cid]


def _region_shape(patch: Sequence[int], spatial_aug: bool) -> tuple[int, ...]:
    if not spatial_aug:
        return tuple(patch)
    # margin for rotation/scaling; keep (region - patch) even so that the
    # identity transform is an exact centre crop
    out = []
    for p in patch:
        r = math.ceil(p * 1.3)
        if (r - p) % 2:
            r += 1
        out.append(r)
    return tuple(out)


def _extract(arr: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float) -> np.ndarray:
    """Crop ``arr[:, start:start+size]`` with constant padding outside."""
    c = arr.shape[0]
    out = np.full((c, *size), fill, dtype=arr.dtype)
    src, dst = [], []
    for s, n, dim in zip(start, size, arr.shape[1:], strict=True):
        a, b = max(s, 0), min(s + n, dim)
        if b <= a:
            return out
        src.append(slice(a, b))
        dst.append(slice(a - s, b - s))
    out[(slice(None), *dst)] = arr[(slice(None), *src)]
    return out


def _labels_to_target(seg: np.ndarray, plans: Plans) -> np.ndarray:
    """Label map (1, ...) -> class indices (1, ...) or region maps (R, ...)."""
    if plans.region_based:
        return np.stack(
            [
                np.isin(seg[0], v if isinstance(v, tuple) else (v,))
                for v in plans.foreground.values()
            ]
        ).astype(np.int16)
    values: list[int] = sorted(
        {0} | {x for v in plans.labels.values() for x in (v if isinstance(v, tuple) else (v,))}
    )
    lut = np.zeros(max(values) + 1, dtype=np.int16)
    for i, v in enumerate(values):
        lut[v] = i
    return lut[np.clip(seg, 0, max(values))]


def sample_batch(
    cases: _Cases,
    plans: Plans,
    config: Configuration,
    rng: np.random.Generator,
    *,
    batch_size: int,
    oversample: float,
    region_size: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Sample image regions and targets (nnU-Net's foreground oversampling)."""
    d = config.spatial_dims
    imgs, tgts = [], []
    n_forced = round(batch_size * oversample)
    for b in range(batch_size):
        cid = cases.ids[int(rng.integers(len(cases.ids)))]
        data, seg, fg = cases.get(cid)
        force = b >= batch_size - n_forced
        shape = data.shape[1:]
        centre = None
        if force:
            present = [k for k, v in fg.items() if len(v)]
            if present:
                k = present[int(rng.integers(len(present)))]
                centre = fg[k][int(rng.integers(len(fg[k])))]
        if d == 2 and len(shape) == 3:
            ax = config.slice_axis if config.slice_axis is not None else 2
            sl = int(centre[ax]) if centre is not None else int(rng.integers(shape[ax]))
            data2 = np.take(data, sl, axis=ax + 1)
            seg2 = np.take(seg, sl, axis=ax + 1)
            c2 = None if centre is None else np.delete(centre, ax)
            shape2 = data2.shape[1:]
        else:
            data2, seg2, c2, shape2 = data, seg, centre, shape
        start = []
        for a in range(d):
            p = config.patch_size[a]
            r = region_size[a]
            if c2 is not None:
                lo = int(c2[a]) - p // 2 + int(rng.integers(-(p // 4), p // 4 + 1))
            else:
                lo = int(rng.integers(-(p // 2), max(1, shape2[a] - p // 2)))
            start.append(lo - (r - p) // 2)
        imgs.append(_extract(np.asarray(data2), start, region_size, 0.0))
        tgts.append(_labels_to_target(_extract(np.asarray(seg2), start, region_size, 0), plans))
    return np.stack(imgs), np.stack(tgts)


class _BatchStream(torch.utils.data.IterableDataset):
    """Yields (iteration, image, target) for iterations [start, stop)."""

    def __init__(
        self,
        folder: Path,
        case_ids: Sequence[str],
        plans: Plans,
        config: Configuration,
        tcfg: TrainConfig,
        start: int,
        stop: int,
        rank: int,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.folder, self.case_ids, self.plans, self.config = folder, list(case_ids), plans, config
        self.tcfg, self.start, self.stop, self.rank, self.augment = tcfg, start, stop, rank, augment

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None:
            torch.set_num_threads(1)
        cases = _Cases(self.folder, self.case_ids)
        spatial = self.augment and (
            self.tcfg.augment.p_rotation > 0 or self.tcfg.augment.p_scale > 0
        )
        region = _region_shape(self.config.patch_size, spatial)
        for it in range(self.start + wid, self.stop, nw):
            yield (
                it,
                *make_batch(
                    cases, self.plans, self.config, self.tcfg, it, self.rank, region, self.augment
                ),
            )


def make_batch(
    cases: _Cases,
    plans: Plans,
    config: Configuration,
    tcfg: TrainConfig,
    iteration: int,
    rank: int,
    region: Sequence[int],
    augment: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (deterministic) training batch of one iteration."""
    rng = np.random.default_rng([tcfg.seed, iteration, rank])
    img, tgt = sample_batch(
        cases,
        plans,
        config,
        rng,
        batch_size=config.batch_size,
        oversample=tcfg.oversample_foreground,
        region_size=region,
    )
    ti, tt = torch.from_numpy(img), torch.from_numpy(tgt)
    if not augment:
        sl = tuple(
            slice((r - p) // 2, (r - p) // 2 + p)
            for r, p in zip(region, config.patch_size, strict=True)
        )
        return ti[(slice(None), slice(None), *sl)].float(), tt[(slice(None), slice(None), *sl)]
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    params = sample_parameters(tcfg.augment, config.batch_size, config.spatial_dims, g)
    return augment_batch(ti, tt, config.patch_size, params)


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`train`."""
    p = Path(path)
    if not p.exists():
        raise TrainingError(f"{p}: no checkpoint")
    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # corrupt file
        raise TrainingError(f"{p}: cannot read checkpoint ({e})") from e


def _poly_lr(lr0: float, it: int, total: int) -> float:
    return lr0 * (1.0 - min(it, total) / max(total, 1)) ** 0.9


def _pseudo_dice(
    logits: torch.Tensor, target: torch.Tensor, region: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if region:
        pred = logits > 0
        t = target.bool()
        axes = (0, *range(2, logits.ndim))
        tp = (pred & t).sum(axes)
        fp = (pred & ~t).sum(axes)
        fn = (~pred & t).sum(axes)
    else:
        pred = logits.argmax(1)
        t = target[:, 0].long()
        n = logits.shape[1]
        tp = torch.stack([((pred == c) & (t == c)).sum() for c in range(1, n)])
        fp = torch.stack([((pred == c) & (t != c)).sum() for c in range(1, n)])
        fn = torch.stack([((pred != c) & (t == c)).sum() for c in range(1, n)])
    return (
        tp.numpy().astype(np.float64),
        fp.numpy().astype(np.float64),
        fn.numpy().astype(np.float64),
    )


def _class_names(plans: Plans) -> list[str]:
    return list(plans.foreground.keys())


def train(
    preprocessed: str | os.PathLike[str],
    plans: Plans,
    out_dir: str | os.PathLike[str],
    *,
    configuration: str | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train one fold of a configuration on preprocessed data.

    Parameters
    ----------
    preprocessed : path
        Folder written by :func:`preprocess_dataset` for this configuration.
    plans : Plans
        The plan (architecture, patch, batch, iterations).
    out_dir : path
        Model folder; the fold's files go to ``out_dir/fold_<k>/``
        (``checkpoint_latest.pt``, ``checkpoint_final.pt``, ``log.csv``,
        ``losses.csv``, ``train_config.json``) and ``plans.json`` to ``out_dir``.
    configuration : str, optional
        Configuration name (default: the plan's default).
    config : TrainConfig, optional
        Run options.
    resume : bool
        Continue from ``checkpoint_latest.pt`` (same batches, same RNG state).

    Returns
    -------
    TrainResult

    Notes
    -----
    Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in
    :class:`torch.nn.parallel.DistributedDataParallel` on the gloo backend; each
    rank draws its own batches (seeded with its rank) and rank 0 writes files.
    """
    tcfg = config or TrainConfig()
    name = configuration or plans.default_configuration
    if name not in plans.configurations:
        raise TrainingError(
            f"plan has no configuration {name!r}; it has {sorted(plans.configurations)}"
        )
    cfg = plans.configurations[name]
    folder = Path(preprocessed)
    case_ids = sorted(p.name[: -len("_seg.npy")] for p in folder.glob("*_seg.npy"))
    if not case_ids:
        raise TrainingError(f"{folder}: no preprocessed cases (run `medlens seg preprocess` first)")
    # --- distributed -------------------------------------------------------------------
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dist = None
    if world > 1:
        import torch.distributed as dist_mod

        if not dist_mod.is_initialized():
            dist_mod.init_process_group("gloo")
        dist = dist_mod
    cores = available_cores()
    if tcfg.threads:
        threads = tcfg.threads
    elif plans.calibration.measurements:  # measured: use the faster thread count
        threads = max(1, plans.calibration.threads // world)
    else:
        threads = max(1, cores // world)
    torch.set_num_threads(threads)
    workers = (
        tcfg.num_workers
        if tcfg.num_workers is not None
        else (1 if cores <= 2 else min(4, cores // 2))
    )
    # --- split -------------------------------------------------------------------------
    if tcfg.fold == "all":
        train_ids, val_ids = case_ids, case_ids
        fold_name = "fold_all"
    else:
        splits = kfold_split(case_ids, tcfg.n_folds, seed=tcfg.seed)
        k = int(tcfg.fold)
        if not 0 <= k < tcfg.n_folds:
            raise TrainingError(f"fold must be 0..{tcfg.n_folds - 1} or 'all', got {tcfg.fold}")
        train_ids, val_ids = splits[k]["train"], splits[k]["val"]
        fold_name = f"fold_{k}"
    out = Path(out_dir)
    fdir = out / fold_name
    if rank == 0:
        fdir.mkdir(parents=True, exist_ok=True)
        plans.save(out / "plans.json")
        from medlens._atomic import atomic_write_json

        atomic_write_json(
            fdir / "train_config.json",
            {
                "configuration": name,
                **tcfg.to_dict(),
                "train_cases": train_ids,
                "val_cases": val_ids,
                "world_size": world,
                "threads": threads,
                "num_workers": workers,
            },
        )
    # --- model & optimiser -------------------------------------------------------------
    torch.manual_seed(tcfg.seed)
    net_cfg = cfg.network
    net = build_network(net_cfg)
    model: nn.Module = net
    if dist is not None:
        model = torch.nn.parallel.DistributedDataParallel(net)
    opt_name = tcfg.optimizer.lower()
    if opt_name == "sgd":
        lr0 = tcfg.learning_rate or 0.01
        opt: torch.optim.Optimizer = torch.optim.SGD(
            net.parameters(),
            lr=lr0,
            momentum=0.99,
            nesterov=True,
            weight_decay=3e-5 if tcfg.weight_decay is None else tcfg.weight_decay,
        )
    elif opt_name == "adamw":
        lr0 = tcfg.learning_rate or 1e-3
        opt = torch.optim.AdamW(
            net.parameters(),
            lr=lr0,
            weight_decay=1e-2 if tcfg.weight_decay is None else tcfg.weight_decay,
        )
    else:
        raise TrainingError(f"optimizer must be 'sgd' or 'adamw', got {tcfg.optimizer!r}")
    loss_fn = DeepSupervisionLoss(
        DiceCELoss(region_based=plans.region_based, batch_dice=tcfg.batch_dice)
    )
    total = int(tcfg.iterations or cfg.iterations)
    planned = total
    per_epoch = int(tcfg.iterations_per_epoch or cfg.iterations_per_epoch)
    start_it = 0
    log_rows: list[dict[str, Any]] = []
    ema: float | None = None
    elapsed0 = 0.0
    # time-limit fits: (iteration, new total, seconds per iteration measured)
    limit_fits: list[tuple[int, int, float]] = []
    if resume:
        ck_path = fdir / "checkpoint_latest.pt"
        state = load_checkpoint(ck_path)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_it = int(state["iteration"]) + 1
        total = int(state["total_iterations"])
        per_epoch = int(state["iterations_per_epoch"])
        log_rows = list(state["log"])
        ema = state["ema"]
        elapsed0 = float(state["elapsed"])
        limit_fits = [(int(a), int(b), float(c)) for a, b, c in state.get("time_limit_fits", [])]
        planned = int(state.get("planned_iterations", total))
    # losses.csv: per-iteration training loss (truncated to the checkpoint on resume)
    losses_path = fdir / "losses.csv"
    if rank == 0:
        kept = []
        if resume and losses_path.exists():
            with open(losses_path, encoding="utf-8") as f:
                kept = [r for r in csv.reader(f)][1:]
            kept = [r for r in kept if int(r[0]) < start_it]
        with open(losses_path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["iteration", "loss", "lr"])
            w.writerows(kept)
    names = _class_names(plans)

    def checkpoint(it: int, final: bool = False) -> None:
        if rank != 0:
            return
        state = {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "iteration": it,
            "total_iterations": total,
            "iterations_per_epoch": per_epoch,
            "torch_rng": torch.get_rng_state(),
            "log": log_rows,
            "ema": ema,
            "elapsed": elapsed0 + (time.perf_counter() - t_start),
            "configuration": name,
            "network": net_cfg.to_dict(),
            "time_limit_fits": limit_fits,
            "planned_iterations": planned,
            "class_names": names,
        }
        _save_checkpoint(fdir / "checkpoint_latest.pt", state)
        if final:
            _save_checkpoint(fdir / "checkpoint_final.pt", state)

    val_cases = _Cases(folder, val_ids)
    val_region = _region_shape(cfg.patch_size, False)

    def validate() -> tuple[float, np.ndarray]:
        net.eval()
        tp = fp = fn = None
        vloss = 0.0
        with torch.no_grad():
            for vb in range(tcfg.validation_batches):
                x, y = make_batch(val_cases, plans, cfg, tcfg, 10**9 + vb, 0, val_region, False)
                o = net(x)
                assert isinstance(o, torch.Tensor)
                vloss += float(loss_fn(o, y))
                a, b, c = _pseudo_dice(o, y, plans.region_based)
                tp, fp, fn = (a, b, c) if tp is None else (tp + a, fp + b, fn + c)
        net.train()
        assert tp is not None and fp is not None and fn is not None
        dice = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-8)
        return vloss / tcfg.validation_batches, dice

    # under a time limit the total may grow up to max_extension x the plan
    stop = total
    if tcfg.time_limit_s is not None:
        stop = max(total, int(planned * max(1.0, tcfg.max_extension)), tcfg.min_iterations)
    stream = _BatchStream(folder, train_ids, plans, cfg, tcfg, start_it, stop, rank)
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        prefetch_factor=2 if workers > 0 else None,
        persistent_workers=False,
    )
    t_start = time.perf_counter()
    last_ck = t_start
    last_fit = [start_it, elapsed0]  # (iteration count, seconds) at the previous fit

    def refit(it: int, total: int) -> int:
        """New total so that the run ends at the time limit (see TrainConfig)."""
        assert tcfg.time_limit_s is not None
        spent = elapsed0 + time.perf_counter() - t_start
        done = it + 1
        n = done - int(last_fit[0])
        per_it = (spent - last_fit[1]) / n if n >= 3 else spent / max(done - start_it, 1)
        per_it = max(per_it, 1e-6)
        fit = done + max(0, int((tcfg.time_limit_s - spent) / per_it))
        upper = max(planned, int(planned * tcfg.max_extension))
        new = max(min(fit, upper), tcfg.min_iterations, done)
        if dist is not None:
            tt = torch.tensor([new])
            dist.all_reduce(tt, op=dist.ReduceOp.MIN)
            new = int(tt)
        last_fit[0], last_fit[1] = done, spent
        limit_fits.append((done, new, round(per_it, 4)))
        bar.update(task, total=new)
        return new

    epoch_losses: list[float] = []
    epoch_t0 = time.perf_counter()
    final_loss = float("nan")
    net.train()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn(f"train {name} {fold_name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not progress or rank != 0,
    )
    it = start_it - 1
    with bar:
        task = bar.add_task("train", total=total, completed=start_it, info="")
        losses_f = open(losses_path, "a", encoding="utf-8", newline="") if rank == 0 else None
        try:
            for it, x, y in loader:
                if it >= total:
                    break
                lr = _poly_lr(lr0, it, total)
                for gparam in opt.param_groups:
                    gparam["lr"] = lr
                outs = model(x)
                loss = loss_fn(outs, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
                opt.step()
                lv = float(loss.detach())
                final_loss = lv
                epoch_losses.append(lv)
                if losses_f is not None:
                    losses_f.write(f"{it},{lv:.8g},{lr:.6g}\n")
                    losses_f.flush()
                if tcfg.time_limit_s is not None and it + 1 == 5 and not limit_fits:
                    total = refit(it, total)
                if (it + 1) % per_epoch == 0 or it + 1 == total:
                    vloss, dice = validate()
                    md = float(np.mean(dice)) if len(dice) else float("nan")
                    ema = md if ema is None else 0.9 * ema + 0.1 * md
                    row = {
                        "epoch": len(log_rows),
                        "iteration": it + 1,
                        "lr": lr,
                        "train_loss": float(np.mean(epoch_losses)),
                        "val_loss": vloss,
                        **{f"pseudo_dice_{n}": float(v) for n, v in zip(names, dice, strict=False)},
                        "ema_pseudo_dice": ema,
                        "epoch_seconds": time.perf_counter() - epoch_t0,
                        "elapsed_seconds": elapsed0 + time.perf_counter() - t_start,
                        "total_iterations": total,
                    }
                    log_rows.append(row)
                    if rank == 0:
                        _write_log(fdir / "log.csv", log_rows)
                    epoch_losses = []
                    epoch_t0 = time.perf_counter()
                    if tcfg.time_limit_s is not None and it + 1 < total:
                        total = refit(it, total)
                    bar.update(task, info=f"loss {row['train_loss']:.3f} pseudo-Dice {md:.3f}")
                bar.update(task, completed=it + 1)
                now = time.perf_counter()
                if now - last_ck >= tcfg.checkpoint_every_s and it + 1 < total:
                    checkpoint(it)
                    last_ck = now
                if it + 1 >= total:
                    break
        finally:
            if losses_f is not None:
                losses_f.close()
    checkpoint(it, final=True)
    if dist is not None:
        dist.barrier()
    seconds = elapsed0 + time.perf_counter() - t_start
    last = log_rows[-1] if log_rows else {}
    pd = {n: float(last.get(f"pseudo_dice_{n}", float("nan"))) for n in names}
    return TrainResult(
        fdir, it + 1, seconds, final_loss, pd, fdir / "log.csv", planned, tuple(limit_fits)
    )


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    from medlens._atomic import atomic_path

    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def read_log(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of a log.csv."""
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def json_dump(obj: Any) -> str:
    """Compact JSON (for the CLI)."""
    return json.dumps(obj, indent=2, default=str)
