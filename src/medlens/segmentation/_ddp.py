"""Entry point for ``torchrun``.

Run as ``python -m torch.distributed.run ... -m medlens.segmentation._ddp ARGS``.

``ARGS`` is one JSON object: ``{"preprocessed", "plans", "out_dir",
"configuration", "config" (TrainConfig fields), "resume"}``. Each rank runs
:func:`medlens.segmentation._train.train`, which sees ``WORLD_SIZE``/``RANK``
and wraps the network in DistributedDataParallel on the gloo backend.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def run(args: dict[str, Any]) -> None:
    """Train one rank from a JSON-decoded argument object."""
    from medlens.segmentation._augment import AugmentConfig
    from medlens.segmentation._plan import Plans
    from medlens.segmentation._train import TrainConfig, train

    cfg = dict(args.get("config", {}))
    if "augment" in cfg and isinstance(cfg["augment"], dict):
        aug = dict(cfg["augment"])
        for k, v in aug.items():
            if isinstance(v, list):
                aug[k] = tuple(v)
        cfg["augment"] = AugmentConfig(**aug)
    train(
        args["preprocessed"],
        Plans.load(args["plans"]),
        args["out_dir"],
        configuration=args.get("configuration"),
        config=TrainConfig(**cfg),
        resume=bool(args.get("resume", False)),
        progress=bool(args.get("progress", False)),
    )
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def ddp_command(n_proc: int, args: dict[str, Any]) -> list[str]:
    """The torchrun command line for ``n_proc`` CPU processes."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n_proc}",
        "-m",
        "medlens.segmentation._ddp",
        json.dumps(args),
    ]


if __name__ == "__main__":  # pragma: no cover - exercised through torchrun in tests
    run(json.loads(sys.argv[1]))
