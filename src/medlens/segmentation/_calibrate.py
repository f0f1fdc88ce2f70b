"""Calibration: measure this machine's U-Net training speed (imports torch)."""

from __future__ import annotations

import time

import numpy as np

from medlens.segmentation._config import NetworkConfig
from medlens.segmentation._plan import Calibration, _cost_terms

__all__ = ["calibrate"]


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
        ``torch.set_num_threads`` value during the measurement (default: keep).
    repeats : int
        Timed steps per probe.
    dims : {2, 3}
        Probe 2D or 3D networks.
    """
    import torch
    from scipy.optimize import nnls

    from medlens.segmentation._networks import build_network

    if threads is not None:
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
