"""``medlens recon``: simulate multi-coil k-space, reconstruct it, train a learned model.

::

    medlens recon simulate T1.nii.gz sim.h5 --coils 8 --accel 4 --acs 24 --mask equispaced
    medlens recon run sim.h5 out.nii.gz --method cs-wavelet --maps espirit
    medlens recon train --data SIMDIR --out model --time-budget 30m
    medlens recon run sim.h5 out.h5 --method varnet --model model/checkpoint.pt
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from medlens.cli._common import console
from medlens.errors import MedlensError

__all__ = ["app", "parse_slices"]

app = typer.Typer(
    help="MRI reconstruction: simulate k-space from an image, reconstruct (zero-filled, "
    "GRAPPA, SENSE, compressed sensing, TV, VarNet), train an unrolled network.",
    no_args_is_help=True,
)


def parse_slices(text: str, n: int) -> list[int]:
    """Slice indices from ``"center"``, ``"all"``, ``"40"`` or ``"a:b[:step]"``.

    Examples
    --------
    >>> parse_slices("center", 9), parse_slices("2:8:3", 9), parse_slices("all", 3)
    ([4], [2, 5], [0, 1, 2])
    """
    t = text.strip().lower()
    if t == "center":
        return [n // 2]
    if t == "all":
        return list(range(n))
    try:
        if ":" in t:
            parts = [int(p) if p else None for p in t.split(":")]
            idx = list(range(n))[slice(*parts)]
        else:
            idx = [int(t)]
    except ValueError:
        raise MedlensError(
            f"cannot read the slices {text!r}; use center, all, 40 or 20:60:5"
        ) from None
    if not idx or any(not 0 <= i < n for i in idx):
        raise MedlensError(f"slices {text!r} select nothing valid among {n} slices")
    return idx


def _pad_to(n: int, multiple: int) -> tuple[int, int]:
    total = (-n) % multiple
    return total // 2, total - total // 2


@app.command("simulate")
def simulate(
    image: Path = typer.Argument(..., help="Real magnitude image (NIfTI, NRRD, MHA, DICOM ...)."),
    output: Path = typer.Argument(..., help="Output fastMRI-layout .h5 file."),
    coils: int = typer.Option(8, "--coils", min=1, help="Number of receive coils."),
    accel: int = typer.Option(4, "--accel", min=1, help="Acceleration."),
    acs: int = typer.Option(24, "--acs", min=1, help="Calibration lines (box size for 2D masks)."),
    mask: str = typer.Option(
        "equispaced", "--mask", help="equispaced | random | uniform | poisson | variable-density."
    ),
    noise: float = typer.Option(
        0.002, "--noise", min=0.0, help="k-space noise std per real component, relative to max."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for phase, mask and noise."),
    slices: str = typer.Option(
        "center", "--slices", help="Axial slices of a 3D image: center, all, 40 or a:b[:step]."
    ),
    multiple: int = typer.Option(
        16, "--pad-multiple", min=1, help="Zero-pad the matrix to a multiple of this."
    ),
    oversample: int = typer.Option(
        2, "--oversample", min=1, help="Fine-grid factor of the simulation (>= 2 avoids the "
        "inverse crime)."
    ),
) -> None:
    """Simulate undersampled multi-coil k-space from a real image (no inverse crime)."""
    from medlens.image import reorient
    from medlens.io import read_image, write_fastmri
    from medlens.reconstruction import MASK_KINDS, simulate_kspace

    if mask not in MASK_KINDS:
        raise MedlensError(f"unknown --mask {mask!r}; choose one of {', '.join(MASK_KINDS)}")
    img = read_image(image)
    if img.n_channels != 1:
        raise MedlensError(f"{image}: has {img.n_channels} channels; give a single-channel image")
    ndim = img.spatial_ndim
    if ndim == 3:
        img = reorient(img, "RAS")
        arr = np.asarray(img.array, dtype=np.float64)
        idx = parse_slices(slices, arr.shape[2])
        stack = np.stack([arr[:, :, k] for k in idx])
        k_step = idx[1] - idx[0] if len(idx) > 1 else 1
    else:
        stack = np.asarray(img.array, dtype=np.float64)[None]
        idx, k_step = [0], 1
    if not np.isfinite(stack).all() or stack.max() <= 0:
        raise MedlensError(f"{image}: the selected slices are empty or not finite")
    (py0, py1), (px0, px1) = _pad_to(stack.shape[1], multiple), _pad_to(stack.shape[2], multiple)
    stack = np.pad(stack, ((0, 0), (py0, py1), (px0, px1)))
    affine = np.array(img.affine, dtype=np.float64)
    shift = np.array([-py0, -px0, idx[0] if ndim == 3 else 0, 1.0])
    origin = affine @ shift
    affine[:, 3] = origin
    if ndim == 3:
        affine[:3, 2] *= k_step
    t0 = time.perf_counter()
    try:
        sim = simulate_kspace(
            stack, coils=coils, acceleration=accel, acs=acs, mask=mask, noise=noise,
            seed=seed, oversample=oversample,
        )  # fmt: skip
    except ValueError as e:
        raise MedlensError(f"cannot simulate from {image}: {e}") from None
    spacing = [float(np.linalg.norm(affine[:3, i])) for i in range(3)]
    h, w = stack.shape[1:]
    fov = (h * spacing[0], w * spacing[1], spacing[2])
    write_fastmri(
        output, sim.masked_kspace, mask=sim.mask, target=sim.target, maps=sim.maps,
        acquisition="MEDLENS_SIMULATED", fov_mm=fov,
        attrs={
            "acceleration": accel, "num_low_frequency": acs, "noise": noise, "seed": seed,
            "mask_kind": mask, "coils": coils, "oversample": oversample,
            "medlens_affine": json.dumps(affine.tolist()), "medlens_ndim": ndim,
            "medlens_source": str(image), "medlens_slices": json.dumps(idx),
        },
    )  # fmt: skip
    m = sim.mask
    net = m.size / max(int(m.sum()), 1)
    console.print(
        f"simulated {len(idx)} slice(s) of {h}x{w}, {coils} coils, {mask} mask "
        f"(nominal R={accel}, net R={net:.2f}, {acs} ACS), noise {noise:g} "
        f"in {time.perf_counter() - t0:.1f} s -> {output}"
    )


def _crop(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = arr.shape[-2:]
    ch, cw = min(shape[0], h), min(shape[1], w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return arr[..., y0 : y0 + ch, x0 : x0 + cw]


def _method_options(method: str, lamda: float | None, iters: int | None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if lamda is not None:
        opts["lamda"] = lamda
    if iters is not None:
        if method in ("zf", "grappa"):
            raise MedlensError(f"--iters does not apply to --method {method}")
        opts["max_iter"] = iters
    if lamda is not None and method == "zf":
        raise MedlensError("--lamda does not apply to --method zf")
    return opts


@dataclass(frozen=True)
class _Stack:
    """Slices to reconstruct, however the input file stored them."""

    kspace: np.ndarray  # (N, C, H, W) zero-filled
    mask: np.ndarray | None  # shared (W,) or (H, W) mask, None: inferred per slice
    true_maps: np.ndarray | None  # (C, H, W)
    recon_size: tuple[int, int] | None
    grid: tuple[int, ...]  # leading shape the N slices unfold to: (S,) or (t, kz)


def _read_fastmri_stack(input: Path, maps: str) -> tuple[_Stack, Any]:
    from medlens.io import read_fastmri

    vol = read_fastmri(input)
    true_maps = None
    if maps == "true":
        if vol.maps is None:
            raise MedlensError(f"{input}: has no sensitivity_maps; use --maps espirit")
        true_maps = vol.maps
    size = None if vol.recon_size is None else (vol.recon_size[0], vol.recon_size[1])
    k = vol.masked_kspace
    return _Stack(k, vol.mask, true_maps, size, (k.shape[0],)), vol


def _read_cmrxrecon_stack(
    input: Path, maps: str, key: str | None, mask_file: Path | None, slices: str, frames: str
) -> _Stack:
    from medlens.io import read_cmrxrecon, read_cmrxrecon_mask

    if maps == "true":
        raise MedlensError(f"{input}: CMRxRecon files carry no coil maps; use --maps espirit")
    data = read_cmrxrecon(input, key=key)
    k = data.kspace  # (t, kz, kc, kx, ky): ky (undersampled) last
    ts = parse_slices(frames, k.shape[0])
    zs = parse_slices(slices, k.shape[1])
    sel = k[np.ix_(ts, zs)]
    mask = None
    if mask_file is not None:
        m2 = read_cmrxrecon_mask(mask_file, data.acceleration)
        if m2.shape != k.shape[-2:]:
            raise MedlensError(
                f"{mask_file}: mask shape {m2.shape} does not match k-space (kx, ky) "
                f"{k.shape[-2:]}"
            )
        cols = np.asarray(m2.any(axis=0))
        mask = cols if np.array_equal(m2, np.broadcast_to(cols, m2.shape)) else m2
        sel = sel * mask
    stack = sel.reshape((-1, *sel.shape[2:]))
    return _Stack(stack, mask, None, None, (len(ts), len(zs)))


@app.command("run")
def run(
    input: Path = typer.Argument(
        ..., help="fastMRI-layout .h5 (e.g. from recon simulate) or CMRxRecon 2023 .mat file."
    ),
    output: Path = typer.Argument(..., help="Output .h5 (fastMRI 'reconstruction') or .nii.gz."),
    method: str = typer.Option(
        "cs-wavelet", "--method", help="zf | grappa | sense | cs-wavelet | tv | varnet."
    ),
    maps: str = typer.Option(
        "espirit", "--maps", help="Coil maps: espirit | walsh | lowres | true."
    ),
    map_sets: int | None = typer.Option(
        None, "--map-sets", min=1, max=2,
        help="ESPIRiT sets of maps (soft SENSE) for sense / cs-wavelet / tv; default 2 (the "
        "second is used only where objects meet the edge of the field of view).",
    ),
    model: Path | None = typer.Option(
        None, "--model", help="VarNet/U-Net checkpoint (--method varnet)."
    ),
    lamda: float | None = typer.Option(
        None, "--lamda", help="Regularisation weight (default: automatic)."
    ),
    iters: int | None = typer.Option(
        None, "--iters", min=1,
        help="Iteration budget (default: automatic; sense: k-space cross-validation).",
    ),
    magnitude: str = typer.Option(
        "abs", "--magnitude",
        help="sense / cs-wavelet / tv output: abs (|x|) | expected-rss (estimate of the fully "
        "sampled RSS image, its noise floor included).",
    ),
    crop: bool = typer.Option(
        True, "--crop/--no-crop", help="Centre-crop to the header's recon matrix (fastMRI)."
    ),
    key: str | None = typer.Option(
        None, "--key", help="CMRxRecon .mat: variable (default: the first kspace_* one)."
    ),
    mask_file: Path | None = typer.Option(
        None, "--mask", help="CMRxRecon .mat: *_mask.mat file (default: the sampled lines "
        "are read from the zero-filled data)."
    ),
    slices: str = typer.Option(
        "all", "--slices", help="CMRxRecon .mat: slices kz (center, all, 3 or a:b[:step])."
    ),
    frames: str = typer.Option(
        "all", "--frames", help="CMRxRecon .mat: frames t (cine) or weightings (mapping)."
    ),
) -> None:
    """Reconstruct every selected slice of a k-space file, with progress and timing.

    fastMRI files give ``(slices, H, W)`` outputs; CMRxRecon ``.mat`` files
    ``(frames, slices, kx, ky)`` in the h5 output (NIfTI: ``(kx, ky, slices,
    frames)`` on a 1 mm grid, the files carrying no geometry).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from medlens.reconstruction import (
        CLASSICAL_METHODS,
        MAGNITUDES,
        MAP_ESTIMATORS,
        reconstruct_slice,
    )

    methods = (*CLASSICAL_METHODS, "varnet")
    if method not in methods:
        raise MedlensError(f"unknown --method {method!r}; choose one of {', '.join(methods)}")
    if maps not in MAP_ESTIMATORS:
        raise MedlensError(f"unknown --maps {maps!r}; choose one of {', '.join(MAP_ESTIMATORS)}")
    if magnitude not in MAGNITUDES:
        raise MedlensError(f"unknown --magnitude {magnitude!r}; choose abs or expected-rss")
    suffix = (
        "".join(output.suffixes[-2:]).lower() if output.suffix == ".gz" else output.suffix.lower()
    )
    if suffix not in (".h5", ".nii", ".nii.gz"):
        raise MedlensError(f"{output}: output must end in .h5, .nii or .nii.gz")
    is_mat = input.suffix.lower() == ".mat"
    if not is_mat and (key is not None or mask_file is not None
                       or slices != "all" or frames != "all"):  # fmt: skip
        raise MedlensError("--key, --mask, --slices and --frames apply to CMRxRecon .mat input")
    vol = None
    if is_mat:
        stack = _read_cmrxrecon_stack(input, maps, key, mask_file, slices, frames)
    else:
        stack, vol = _read_fastmri_stack(input, maps)
    net = None
    if method == "varnet":
        if model is None:
            raise MedlensError(
                "--method varnet needs --model CHECKPOINT (from medlens recon train)"
            )
        from medlens.reconstruction.varnet import load_model

        net = load_model(model)
    opts = _method_options(method, lamda, iters) if method != "varnet" else {}
    n_slices = stack.kspace.shape[0]
    out = np.zeros((n_slices, *stack.kspace.shape[-2:]), dtype=np.float32)
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console, transient=False,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"{method} {input.name}", total=n_slices, status="")
        for s in range(n_slices):
            k = stack.kspace[s]

            def cb(info: Any, s: int = s) -> None:
                progress.update(
                    task, status=f"slice {s + 1} iter {info.iteration}/{info.max_iter}"
                )

            try:
                if net is not None:
                    out[s] = net.reconstruct(k, mask=stack.mask)
                else:
                    out[s] = reconstruct_slice(
                        k, method=method, mask=stack.mask,
                        maps=stack.true_maps if stack.true_maps is not None else maps,
                        options=opts, callback=cb, magnitude=magnitude, sets=map_sets,
                    )  # fmt: skip
            except ValueError as e:
                raise MedlensError(f"{input}: slice {s}: {e}") from None
            progress.update(task, advance=1, status=f"slice {s + 1} done")
    elapsed = time.perf_counter() - t0
    if crop and stack.recon_size is not None:
        out = _crop(out, stack.recon_size)
    if vol is not None:
        _write_output(output, suffix, out, vol)
    else:
        _write_cmrxrecon_output(output, suffix, out.reshape((*stack.grid, *out.shape[-2:])), input)
    console.print(
        f"{method} ({maps} maps) on {n_slices} slice(s) of {stack.kspace.shape[-2]}x"
        f"{stack.kspace.shape[-1]} x {stack.kspace.shape[1]} coils in {elapsed:.2f} s "
        f"({elapsed / max(n_slices, 1):.2f} s/slice) -> {output}"
    )


def _write_cmrxrecon_output(output: Path, suffix: str, out: np.ndarray, source: Path) -> None:
    """``(t, kz, kx, ky)`` magnitudes to h5 (as they are) or NIfTI ``(kx, ky, kz, t)``, 1 mm."""
    if suffix == ".h5":
        import h5py

        from medlens._atomic import atomic_path

        with atomic_path(output) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("reconstruction", data=out)
            f.attrs["source"] = str(source)
            f.attrs["axes"] = "t, kz, kx, ky"
        return
    from medlens.image import Image
    from medlens.io import write_image

    arr = np.transpose(out, (2, 3, 1, 0))  # (kx, ky, kz, t)
    if arr.shape[3] == 1:
        arr = arr[..., 0]
        write_image(Image(arr, np.eye(4)), output)
    else:
        write_image(Image(np.moveaxis(arr, 3, 0), np.eye(4), channels=True), output)


@app.command("train")
def train_command(
    data: Path = typer.Option(..., "--data", help="Folder of fastMRI-layout .h5 files."),
    out: Path = typer.Option(Path("recon-model"), "--out", help="Output folder (checkpoint, log)."),
    val_pattern: str = typer.Option(
        "val", "--val-pattern", help="Files whose name contains this validate (another subject)."
    ),
    model: str = typer.Option("varnet", "--model", help="varnet | unet (magnitude baseline)."),
    cascades: int = typer.Option(4, "--cascades", min=1, help="VarNet cascades."),
    chans: int = typer.Option(8, "--chans", min=1, help="U-Net channels."),
    init_cg_iters: int = typer.Option(
        10, "--init-cg-iters", min=0,
        help="VarNet start: CG-SENSE iterations with the estimated maps (0: zero-filled "
        "k-space, as E2E-VarNet).",
    ),
    maps: str = typer.Option(
        "acs", "--maps",
        help="VarNet coil maps: acs (sensitivity U-Net on the ACS, E2E-VarNet) | espirit "
        "(ESPIRiT on the ACS, computed once per slice).",
    ),
    init: str = typer.Option(
        "cg", "--init",
        help="VarNet start: cg (--init-cg-iters CG-SENSE iterations) | cs (medlens's "
        "ESPIRiT + L1-wavelet result; needs --maps espirit; one mask per acceleration and "
        "training slice, computed before training, within the budget).",
    ),
    map_sets: int = typer.Option(
        1, "--map-sets", min=1, max=2,
        help="VarNet with --init cs: sets of ESPIRiT maps (2: soft SENSE, for objects that meet "
        "the edge of the field of view; the CS start uses them too).",
    ),
    augment: bool = typer.Option(
        False, "--augment",
        help="Random flips / transposes of fully sampled slices (with --init cs: "
        "reflections of the slice, its mask and its CS start, no transposes).",
    ),
    loss_region: str = typer.Option(
        "full", "--loss-region",
        help="full: L1 loss over the whole image | object: weight 1 inside the target's object "
        "mask (above 5 % of its maximum, closed, holes filled) and 0.1 outside.",
    ),
    time_budget: str = typer.Option("30m", "--time-budget", help="Wall-clock budget, e.g. 30m."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after N steps."),
    lr: float = typer.Option(
        1e-3, "--lr", help="Initial Adam learning rate (cosine decay over the budget)."
    ),
    accelerations: str = typer.Option(
        "4,8", "--accelerations",
        help="Accelerations of the equispaced masks drawn for fully sampled training files.",
    ),
    acs: int = typer.Option(24, "--acs", min=1, help="Centre lines of the drawn masks."),
    crop_rows: int | None = typer.Option(
        None, "--crop-rows", min=8,
        help="Train on random bands of this many read-out rows (cheaper steps; whole slices "
        "if not given).",
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="torch threads (torch's default if not given)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation and sampling."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
) -> None:
    """Train an unrolled VarNet (or a magnitude U-Net) within a time budget."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from medlens.cli._demo import parse_duration

    budget = parse_duration(time_budget)
    files = sorted(data.glob("*.h5"))
    if not files:
        raise MedlensError(f"{data}: no .h5 files")
    val_files = [f for f in files if val_pattern in f.name]
    train_files = [f for f in files if val_pattern not in f.name]
    if not train_files or not val_files:
        raise MedlensError(
            f"{data}: need training files and validation files (names containing "
            f"{val_pattern!r}); found {len(train_files)} and {len(val_files)}"
        )
    if model not in ("varnet", "unet"):
        raise MedlensError(f"unknown --model {model!r}; use varnet or unet")
    try:
        accel_list = [int(a) for a in accelerations.split(",") if a.strip()]
    except ValueError:
        raise MedlensError(
            f"cannot read --accelerations {accelerations!r}; give integers like 4,8"
        ) from None
    if not accel_list or min(accel_list) < 1:
        raise MedlensError(f"--accelerations {accelerations!r}: give positive integers like 4,8")
    from medlens.reconstruction.varnet import VarNetConfig, train

    if maps not in ("acs", "espirit") or init not in ("cg", "cs"):
        raise MedlensError(f"--maps {maps!r} / --init {init!r}: use acs|espirit and cg|cs")
    if init == "cs" and maps != "espirit":
        raise MedlensError("--init cs needs --maps espirit")
    if map_sets > 1 and init != "cs":
        raise MedlensError("--map-sets 2 needs --init cs (and --maps espirit)")
    if loss_region not in ("full", "object"):
        raise MedlensError(f"--loss-region {loss_region!r}: use full or object")
    config = VarNetConfig(
        kind=model, num_cascades=cascades, chans=chans, init_cg_iters=init_cg_iters,
        maps=maps, init=init, map_sets=map_sets,
    )  # fmt: skip
    with Progress(
        TextColumn("[bold]train {task.fields[kind]}"), BarColumn(), TimeElapsedColumn(),
        TextColumn("step {task.fields[step]} loss {task.fields[loss]} val {task.fields[val]}"),
        console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("train", total=budget, kind=model, step=0, loss="-", val="-")
        last_val = ["-"]

        def cb(step: int, elapsed: float, loss: float, val: float) -> None:
            if val == val:  # not NaN
                last_val[0] = f"{val:.2f} dB"
            progress.update(task, completed=min(elapsed, budget), step=step,
                            loss=f"{loss:.4f}", val=last_val[0])  # fmt: skip

        try:
            result = train(
                train_files, val_files, out, config=config, time_budget_s=budget,
                max_steps=max_steps, lr=lr, accelerations=accel_list, acs=acs,
                crop_rows=crop_rows, augment=augment, loss_region=loss_region,
                num_threads=threads, seed=seed,
                resume=resume, progress=cb,
            )  # fmt: skip
        except (ValueError, FileNotFoundError) as e:
            raise MedlensError(str(e)) from None
    console.print(
        f"trained {model}: {result.steps} steps in {result.elapsed_s:.0f} s, validation PSNR "
        f"{result.val_psnr:.2f} dB -> {result.checkpoint} (log {result.log})"
    )


def _write_output(output: Path, suffix: str, out: np.ndarray, vol: Any) -> None:
    if suffix == ".h5":
        import h5py

        from medlens._atomic import atomic_path

        with atomic_path(output) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("reconstruction", data=out)
            f.attrs["source"] = str(vol.path)
        return
    from medlens.image import Image
    from medlens.io import write_image

    img = Image(*_geometry(out, vol))
    write_image(img, output)


def _geometry(out: np.ndarray, vol: Any) -> tuple[np.ndarray, np.ndarray]:
    """(array, affine) for NIfTI output: the simulation's source grid, else the header's FOV."""
    n_slices, h, w = out.shape
    attrs = vol.attrs
    if "medlens_affine" in attrs:
        affine = np.array(json.loads(attrs["medlens_affine"]), dtype=np.float64)
        full_h, full_w = vol.kspace.shape[-2:]
        # account for a centre crop: shift the origin by the cropped border
        y0, x0 = (full_h - h) // 2, (full_w - w) // 2
        affine[:, 3] = affine @ np.array([y0, x0, 0.0, 1.0])
        if int(attrs.get("medlens_ndim", 3)) == 2 and n_slices == 1:
            return out[0], affine
        return np.moveaxis(out, 0, -1), affine
    fov = vol.recon_fov_mm or vol.encoded_fov_mm
    size = vol.recon_size or vol.encoded_size
    if fov is not None and size is not None and size[0] and size[1]:
        spacing = (fov[0] / size[0], fov[1] / size[1], fov[2] if fov[2] > 0 else 1.0)
    else:
        spacing = (1.0, 1.0, 1.0)
    affine = np.diag([*spacing, 1.0])
    # centre the grid on the scanner origin
    affine[:3, 3] = -np.array([h / 2, w / 2, n_slices / 2]) * np.array(spacing)
    return np.moveaxis(out, 0, -1), affine
