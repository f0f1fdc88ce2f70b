"""Calibration: measure this machine's U-Net training speed (imports torch)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from medlens.segmentation._config import NetworkConfig
from medlens.segmentation._fingerprint import DatasetFingerprint
from medlens.segmentation._plan import Calibration, Configuration, Plans, _cost_terms

__all__ = ["calibrate", "plan_with_verification", "time_configuration"]


def _fastest_thread_count(torch: Any, build_network: Any) -> int:
    """1 thread or all cores, whichever trains a small U-Net faster right now.

    On a shared machine OpenMP threads that wait for each other at every barrier
    can make 2 threads several times slower than 1; measuring is the only way to
    know.
    """
    from medlens.segmentation._train import available_cores

    cores = available_cores()
    if cores == 1:
        return 1
    net = build_network(NetworkConfig(3, 1, 2, features=(8, 16, 32))).train()
    x = torch.randn(2, 1, 32, 32, 32)
    best: dict[int, float] = {}
    for rep in range(3):
        for th in (1, cores):
            torch.set_num_threads(th)
            t0 = time.perf_counter()
            out = net(x)
            sum(o.mean() for o in out).backward()
            dt = time.perf_counter() - t0
            if rep > 0:
                best[th] = min(best.get(th, float("inf")), dt)
    return min(best, key=lambda k: best[k])


def calibrate(*, threads: int | None = None, repeats: int = 2, dims: int = 3) -> Calibration:
    """Time forward/backward/SGD steps of small U-Nets and fit the cost model.

    Three probes (narrow and wide network, small and large patch) are each
    timed ``repeats`` times after one warm-up step; the fastest time per probe
    is kept, and ``t = overhead + batch * (a * activations + b * multiply_adds)``
    is fitted by non-negative least squares (overhead fixed at 0.02 s). Takes
    5-20 s on 2 idle cores; on a loaded machine the plan becomes cheaper.

    Parameters
    ----------
    threads : int, optional
        ``torch.set_num_threads`` value; default: 1 or all cores, whichever a
        short probe finds faster (recorded in ``Calibration.threads`` and used by
        training and prediction).
    repeats : int
        Timed steps per probe.
    dims : {2, 3}
        Probe 2D or 3D networks.
    """
    import torch
    from scipy.optimize import nnls

    from medlens.segmentation._networks import build_network

    if threads is None:
        threads = _fastest_thread_count(torch, build_network)
    torch.set_num_threads(threads)
    n_threads = torch.get_num_threads()
    probes: list[tuple[tuple[int, ...], tuple[int, ...]]]
    if dims == 3:
        probes = [
            ((8, 16, 32), (32, 32, 32)),
            ((16, 32, 64), (32, 32, 32)),
            ((8, 16, 32), (40, 40, 40)),
        ]
    else:
        probes = [
            ((16, 32, 64), (128, 128)),
            ((32, 64, 128), (128, 128)),
            ((16, 32, 64), (192, 192)),
        ]
    rows, times, names = [], [], []
    gen = torch.Generator().manual_seed(0)
    for feats, patch in probes:
        cfg = NetworkConfig(dims, 1, 2, features=feats)
        net = build_network(cfg).train()
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        x = torch.randn((2, 1, *patch), generator=gen)
        best = float("inf")
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            out = net(x)
            loss = sum(o.float().mean() for o in out) if isinstance(out, list) else out.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            dt = time.perf_counter() - t0
            if r > 0:
                best = min(best, dt)
        a, f = _cost_terms(cfg, patch)
        rows.append([1.0, 2 * a, 2 * f])
        times.append(best)
        names.append((f"features {list(feats)} patch {list(patch)} batch 2", round(best, 4)))
    # The fastest of several repeats estimates the unloaded speed; the intercept is
    # fixed (Python/optimizer overhead) because three noisy probes cannot pin it.
    overhead = 0.02
    y = np.maximum(np.array(times) - overhead, 1e-4)
    coef, _ = nnls(np.array(rows)[:, 1:], y)
    per_act, per_flop = (float(c) for c in coef)
    if per_act == 0.0 and per_flop == 0.0:  # degenerate timings: attribute all to flops
        per_flop = float(np.mean([t / r[2] for t, r in zip(times, rows, strict=True)]))
    return Calibration(
        per_activation=per_act,
        per_flop=per_flop,
        overhead=overhead,
        threads=n_threads,
        measurements=tuple(names),
    )


def time_configuration(config: Configuration, *, threads: int, repeats: int = 2) -> float:
    """Seconds of one real training step of a configuration.

    Forward, deep-supervision loss, backward and SGD step with the
    configuration's network, patch and batch; the fastest of ``repeats`` after
    one warm-up step.
    """
    import torch

    from medlens.segmentation._loss import DeepSupervisionLoss, DiceCELoss
    from medlens.segmentation._networks import build_network

    torch.set_num_threads(threads)
    net = build_network(config.network).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = DeepSupervisionLoss(DiceCELoss())
    x = torch.randn((config.batch_size, config.network.in_channels, *config.patch_size))
    y = torch.zeros((config.batch_size, 1, *config.patch_size), dtype=torch.long)
    best = float("inf")
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if r > 0:
            best = min(best, time.perf_counter() - t0)
    return best


def plan_with_verification(
    fingerprint: DatasetFingerprint,
    calibration: Calibration,
    *,
    rounds: int = 2,
    tolerance: float = 1.3,
    **plan_kwargs: Any,
) -> Plans:
    """Plan, time the chosen configuration for real, re-plan if the model was off.

    When the measured step time differs from the prediction by more than
    ``tolerance`` (either way), both cost terms are scaled by the ratio and the
    plan is made again, at most ``rounds`` times. Each round is recorded in
    ``explain``.
    """
    from dataclasses import replace

    from medlens.segmentation._plan import plan_experiment

    plans = plan_experiment(fingerprint, calibration=calibration, **plan_kwargs)
    notes: list[str] = []
    cal = calibration
    for _ in range(rounds):
        cfg = plans.configurations[plans.default_configuration]
        measured = time_configuration(cfg, threads=cal.threads)
        ratio = measured / max(cfg.seconds_per_iteration, 1e-9)
        notes.append(
            f"verification: {cfg.name} patch {cfg.patch_size} measured {measured:.2f} s per "
            f"iteration vs {cfg.seconds_per_iteration:.2f} s predicted (x{ratio:.2f})"
        )
        if 1 / tolerance < ratio < tolerance:
            break
        cal = replace(
            cal,
            per_activation=cal.per_activation * ratio,
            per_flop=cal.per_flop * ratio,
            measurements=(
                *cal.measurements,
                (f"verify patch {list(cfg.patch_size)}", round(measured, 4)),
            ),
        )
        plans = plan_experiment(fingerprint, calibration=cal, **plan_kwargs)
        notes.append("re-planned with the cost model scaled by that ratio")
    return replace(plans, explain=(*plans.explain, *notes))
