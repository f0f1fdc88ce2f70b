"""Learned reconstruction (torch): shapes, ACS handling, training, resume, CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medlens.cli import main  # noqa: E402
from medlens.io import write_fastmri  # noqa: E402
from medlens.reconstruction import fft2c, ifft2c, simulate_kspace  # noqa: E402
from medlens.reconstruction._fft_torch import fft2c_torch, ifft2c_torch  # noqa: E402
from medlens.reconstruction.varnet import (  # noqa: E402
    VarNetConfig,
    _acs_mask,
    build_model,
    load_model,
    parameter_count,
    train,
)

TINY = VarNetConfig(num_cascades=2, chans=4, pools=2, sens_chans=2, sens_pools=1)


def test_import_reconstruction_does_not_import_torch() -> None:
    code = "import sys, medlens.reconstruction, medlens.io; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_torch_fft_matches_numpy() -> None:
    x = np.random.default_rng(0).normal(size=(3, 10, 7)) + 0j
    np.testing.assert_allclose(fft2c_torch(torch.from_numpy(x)).numpy(), fft2c(x), atol=1e-12)
    np.testing.assert_allclose(ifft2c_torch(torch.from_numpy(x)).numpy(), ifft2c(x), atol=1e-12)


def test_acs_mask_keeps_centre_run() -> None:
    m = torch.zeros(1, 1, 1, 16)
    m[..., [0, 4, 6, 7, 8, 9, 12]] = 1
    assert torch.nonzero(_acs_mask(m)[0, 0, 0]).ravel().tolist() == [6, 7, 8, 9]


@pytest.mark.parametrize("kind", ["varnet", "unet"])
def test_forward_shapes_and_gradients(kind: str) -> None:
    model = build_model(VarNetConfig(kind=kind, num_cascades=2, chans=4, pools=2,
                                     sens_chans=2, sens_pools=1))  # fmt: skip
    k = torch.randn(2, 3, 24, 20, dtype=torch.complex64)
    m = torch.zeros(2, 1, 1, 20)
    m[..., ::3] = 1
    m[..., 8:12] = 1
    out = model(k * m, m)
    assert out.shape == (2, 24, 20) and out.dtype == torch.float32
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert parameter_count(model) > 0


def test_default_size_is_cpu_trainable() -> None:
    # 4 cascades / 8 channels: about half a million parameters
    assert 2e5 < parameter_count(build_model(VarNetConfig())) < 3e6


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, make_phantom) -> Path:
    d = tmp_path_factory.mktemp("varnet_data")
    ph = make_phantom(32)
    for name, seed in (("train_a.h5", 1), ("train_b.h5", 2), ("val_c.h5", 3)):
        sim = simulate_kspace(np.stack([ph, ph[::-1]]), coils=4, acceleration=3, acs=8,
                              noise=0.002, seed=seed)  # fmt: skip
        write_fastmri(d / name, sim.masked_kspace, mask=sim.mask, target=sim.target)
    return d


def test_train_resume_and_reconstruct(data_dir: Path, tmp_path: Path) -> None:
    files = sorted(data_dir.glob("train_*.h5"))
    val = [data_dir / "val_c.h5"]
    res = train(files, val, tmp_path, config=TINY, time_budget_s=600, max_steps=4)
    assert res.steps == 4 and res.checkpoint.exists() and np.isfinite(res.val_psnr)
    res2 = train(files, val, tmp_path, resume=True, time_budget_s=600, max_steps=7)
    assert res2.steps == 7 and res2.elapsed_s >= res.elapsed_s
    with open(res2.log) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r["train_loss"]] == list(range(1, 8))
    rec = load_model(tmp_path)
    from medlens.io import read_fastmri

    vol = read_fastmri(val[0])
    img = rec.reconstruct(vol.masked_kspace[0], vol.mask)
    assert img.shape == (32, 32) and np.isfinite(img).all()
    with pytest.raises(FileNotFoundError):
        train(files, val, tmp_path / "empty", resume=True)


def test_cli_train_and_run(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    rc = main(["recon", "train", "--data", str(data_dir), "--out", str(out), "--cascades", "1",
               "--chans", "4", "--max-steps", "3", "--time-budget", "5m"])  # fmt: skip
    assert rc == 0 and (out / "checkpoint.pt").exists() and (out / "log.csv").exists()
    dst = tmp_path / "rec.h5"
    rc = main(["recon", "run", str(data_dir / "val_c.h5"), str(dst), "--method", "varnet",
               "--model", str(out / "checkpoint.pt")])  # fmt: skip
    assert rc == 0 and dst.exists()
    assert main(["recon", "run", str(data_dir / "val_c.h5"), str(dst), "--method", "varnet",
                 "--model", str(tmp_path / "nothing.pt")]) == 2  # fmt: skip
    assert main(["recon", "train", "--data", str(tmp_path), "--out", str(out)]) == 2
