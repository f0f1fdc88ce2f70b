import csv
import functools
import operator
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medlens.segmentation import preprocess_dataset
from medlens.segmentation._train import (
    TrainConfig,
    TrainingError,
    kfold_split,
    load_checkpoint,
    train,
)

from .conftest import tiny_plans, write_dataset


def _losses(path: Path) -> dict[int, float]:
    with open(path) as f:
        return {int(r["iteration"]): float(r["loss"]) for r in csv.DictReader(f)}


@pytest.fixture
def prepared(tmp_path):
    root = write_dataset(tmp_path / "D", n=3)
    ds, plans = tiny_plans(root, iterations=12)
    pre = preprocess_dataset(ds, plans, tmp_path / "pre", workers=1, progress=False)
    plans.save(tmp_path / "plans.json")
    return tmp_path, plans, pre


def test_kfold_split_fixed_seed():
    ids = [f"c{i}" for i in range(7)]
    a, b = kfold_split(ids, 3), kfold_split(list(reversed(ids)), 3)
    assert a == b
    assert sorted(functools.reduce(operator.iadd, (f["val"] for f in a), [])) == sorted(ids)
    for f in a:
        assert not set(f["train"]) & set(f["val"])
    with pytest.raises(TrainingError, match="folds"):
        kfold_split(ids[:2], 5)


def test_train_writes_log_and_checkpoints(prepared):
    tmp, plans, pre = prepared
    cfg = TrainConfig(iterations=6, iterations_per_epoch=3, num_workers=1, threads=1)
    res = train(pre, plans, tmp / "model", config=cfg, progress=False)
    assert res.iterations == 6
    with open(res.log_csv) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [3, 6]
    assert {"pseudo_dice_outer", "pseudo_dice_core", "ema_pseudo_dice", "train_loss"} <= set(
        rows[0]
    )
    state = load_checkpoint(res.model_dir / "checkpoint_final.pt")
    assert state["iteration"] == 5 and state["total_iterations"] == 6
    assert np.isfinite(res.final_loss)
    assert (tmp / "model" / "plans.json").exists()


@pytest.mark.parametrize(
    ("limit", "floor", "extension", "expected"),
    [
        (1e-3, 7, 1.0, 7),  # no time left at the first fit: the floor holds
        (1e6, 0, 1.5, 9),  # ample time: grows to 1.5 x the 6 planned iterations
        (1e6, 0, 1.0, 6),  # ample time, no extension: the plan's count
    ],
)
def test_time_limit_refits_total_within_floor_and_extension(
    prepared, limit, floor, extension, expected
):
    tmp, plans, pre = prepared
    cfg = TrainConfig(
        iterations=6,
        iterations_per_epoch=3,
        num_workers=0,
        threads=1,
        time_limit_s=limit,
        min_iterations=floor,
        max_extension=extension,
    )
    res = train(pre, plans, tmp / "model", config=cfg, progress=False)
    assert res.iterations == expected and res.planned_iterations == 6
    # a fit at every epoch end (3 iterations) before the last iteration
    assert [f[0] for f in res.time_limit_fits] == list(range(3, expected, 3))
    assert all(f[1] == expected for f in res.time_limit_fits)
    state = load_checkpoint(res.model_dir / "checkpoint_final.pt")
    assert state["total_iterations"] == expected
    assert [tuple(f) for f in state["time_limit_fits"]] == list(res.time_limit_fits)


def test_fold_split_training(tmp_path):
    root = write_dataset(tmp_path / "D", n=5)
    ds, plans = tiny_plans(root, iterations=2)
    pre = preprocess_dataset(ds, plans, tmp_path / "pre", workers=1, progress=False)
    res = train(
        pre,
        plans,
        tmp_path / "m",
        config=TrainConfig(fold=1, n_folds=5, num_workers=0, threads=1),
        progress=False,
    )
    assert res.model_dir.name == "fold_1"
    import json

    tc = json.loads((res.model_dir / "train_config.json").read_text())
    assert len(tc["val_cases"]) == 1 and len(tc["train_cases"]) == 4


_SCRIPT = """
import sys
from medlens.segmentation import Plans
from medlens.segmentation._train import TrainConfig, train
plans = Plans.load(sys.argv[1])
train(sys.argv[2], plans, sys.argv[3], config=TrainConfig(iterations=12, iterations_per_epoch=4,
      checkpoint_every_s=0.0, num_workers=int(sys.argv[4]), threads=1), resume=sys.argv[5] == "1",
      progress=False)
"""


def test_resume_after_sigkill_reproduces_losses(prepared):
    tmp, _plans, pre = prepared
    script = tmp / "run.py"
    script.write_text(_SCRIPT)
    py = sys.executable
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # reference: uninterrupted
    subprocess.run(
        [py, str(script), str(tmp / "plans.json"), str(pre), str(tmp / "ref"), "1", "0"],
        check=True,
        env=env,
        timeout=300,
    )
    ref = _losses(tmp / "ref" / "fold_all" / "losses.csv")
    assert sorted(ref) == list(range(12))
    # interrupted with SIGKILL once a few iterations are logged
    proc = subprocess.Popen(
        [py, str(script), str(tmp / "plans.json"), str(pre), str(tmp / "run"), "1", "0"], env=env
    )
    losses = tmp / "run" / "fold_all" / "losses.csv"
    t0 = time.time()
    while time.time() - t0 < 240:
        if losses.exists() and len(losses.read_text().splitlines()) >= 6:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ck = load_checkpoint(tmp / "run" / "fold_all" / "checkpoint_latest.pt")
    killed_at = int(ck["iteration"])
    assert 0 <= killed_at < 11
    assert not (tmp / "run" / "fold_all" / "checkpoint_final.pt").exists()
    subprocess.run(
        [py, str(script), str(tmp / "plans.json"), str(pre), str(tmp / "run"), "1", "1"],
        check=True,
        env=env,
        timeout=300,
    )
    got = _losses(losses)
    assert sorted(got) == list(range(12))
    # the first iteration after the checkpoint and all later ones match the uninterrupted run
    for it in range(12):
        assert got[it] == pytest.approx(ref[it], rel=1e-5, abs=1e-6), it
    assert (tmp / "run" / "fold_all" / "checkpoint_final.pt").exists()


def test_resume_without_checkpoint_errors(prepared):
    tmp, plans, pre = prepared
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(
            pre, plans, tmp / "none", config=TrainConfig(num_workers=0), resume=True, progress=False
        )


def test_ddp_two_gloo_processes(prepared):
    tmp, _plans, pre = prepared
    from medlens.segmentation._ddp import ddp_command

    args = {
        "preprocessed": str(pre),
        "plans": str(tmp / "plans.json"),
        "out_dir": str(tmp / "ddp"),
        "config": {"iterations": 3, "iterations_per_epoch": 3, "num_workers": 0, "threads": 1},
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(ddp_command(2, args), env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    tc = json.loads((tmp / "ddp" / "fold_all" / "train_config.json").read_text())
    assert tc["world_size"] == 2
    state = load_checkpoint(tmp / "ddp" / "fold_all" / "checkpoint_final.pt")
    assert state["iteration"] == 2
