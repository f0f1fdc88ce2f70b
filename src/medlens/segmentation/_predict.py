"""Prediction: preprocess -> sliding window (+TTA, fold ensemble) -> input geometry.

The network sees the case as training did (RAS, cropped to non-zero,
normalised, resampled). Probabilities are mapped back onto the input's own grid
(shape and affine) by linear interpolation in world space, slab by slab along
the last output axis, so the full-resolution float32 probabilities of all
classes never exist at once; the label map is their argmax (softmax) or the
thresholded regions written in ``regions_class_order`` (sigmoid).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlens.errors import MedlensError
from medlens.image import Image, resample
from medlens.segmentation._networks import (
    build_network,
    channels_last_is_faster,
    inference_network,
)
from medlens.segmentation._plan import Configuration, Plans
from medlens.segmentation._preprocess import preprocess_case
from medlens.segmentation._sliding import sliding_window_inference

__all__ = ["PredictionError", "Predictor", "load_predictor"]


class PredictionError(MedlensError, ValueError):
    """A model folder or an input cannot be used for prediction."""


@dataclass
class Predictor:
    """Trained networks of one configuration (one per fold) plus the plan."""

    plans: Plans
    configuration: Configuration
    networks: list[torch.nn.Module]
    folds: list[str]
    postprocessing: dict[str, bool]
    model_dir: Path | None = None
    fill_holes: dict[str, bool] | None = None

    @property
    def label_values(self) -> list[int]:
        """Label value of each softmax output channel."""
        vals: set[int] = {0}
        for v in self.plans.labels.values():
            vals.update(v if isinstance(v, tuple) else (v,))
        return sorted(vals)

    def predict_logits(
        self,
        data: np.ndarray,
        *,
        step: float = 0.5,
        mirror: bool = True,
        batch_size: int = 1,
        precision: str = "float32",
    ) -> torch.Tensor:
        """Fold-averaged probabilities on the preprocessed grid, ``(K, *shape)`` float32.

        ``batch_size`` counts network inputs (tile-mirroring pairs); 1 is the
        fastest on CPU with the oneDNN convolutions of
        :func:`~medlens.segmentation.inference_network` (a tile's activations
        stay in cache). ``precision`` is passed to
        :func:`~medlens.segmentation.sliding_window_inference`.
        """
        cfg = self.configuration
        if precision != "float32" and not all(
            type(n).__name__ != "OnnxNetwork" for n in self.networks
        ):
            raise PredictionError(
                f"precision {precision!r} needs the torch backend (ONNX Runtime runs float32)"
            )
        x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        d = cfg.spatial_dims
        mirror_axes = tuple(range(d)) if mirror else None
        k = self.plans.n_outputs
        probs = None
        for net in self.networks:
            if d == 3 or x.ndim == 3:
                logits = sliding_window_inference(
                    net,
                    x,
                    cfg.patch_size,
                    n_outputs=k,
                    step=step,
                    batch_size=batch_size,
                    mirror_axes=mirror_axes,
                    precision=precision,
                )
            else:  # 2D network over the slices of a 3D volume
                ax = cfg.slice_axis if cfg.slice_axis is not None else 2
                xs = x.movedim(ax + 1, 1)
                slices = [
                    sliding_window_inference(
                        net,
                        xs[:, i],
                        cfg.patch_size,
                        n_outputs=k,
                        step=step,
                        batch_size=batch_size,
                        mirror_axes=mirror_axes,
                        precision=precision,
                    )
                    for i in range(xs.shape[1])
                ]
                logits = torch.stack(slices, 1).movedim(1, ax + 1)
            p = torch.sigmoid(logits) if self.plans.region_based else torch.softmax(logits, 0)
            probs = p if probs is None else probs + p
        assert probs is not None
        return probs / len(self.networks)

    def predict(
        self,
        image: Image,
        *,
        step: float = 0.5,
        mirror: bool = True,
        batch_size: int = 1,
        return_probabilities: bool = False,
        slab: int = 32,
        precision: str = "float32",
    ) -> tuple[Image, np.ndarray | None]:
        """Segment an image; the label map is on the input's grid.

        Parameters
        ----------
        image : Image
            The case (channels-first for several channels).
        step : float
            Tile step as a fraction of the patch.
        mirror : bool
            Mirroring test-time augmentation over every spatial axis.
        batch_size : int
            Network inputs (tile-mirroring pairs) per forward pass.
        return_probabilities : bool
            Also return float16 probabilities ``(K, *input_shape)`` on the input grid.
        slab : int
            Output slices mapped back at a time (bounds memory).
        precision : {"float32", "bfloat16"}
            Network precision: ``"bfloat16"`` runs the networks under CPU
            bfloat16 autocast (torch backend only), several times faster on CPUs
            with AMX/AVX512-BF16 but not bit-equivalent: label maps can differ
            at boundaries (see docs/benchmarks.md for the measured agreement).

        Returns
        -------
        labels : Image
            uint8/int16 label map, same shape and affine as the input.
        probabilities : numpy.ndarray or None
        """
        if not image.channels:
            image = image.with_array(np.asarray(image.array)[None], channels=True)
        n_ch = len(self.plans.channel_names)
        if image.n_channels != n_ch:
            raise PredictionError(
                f"the model expects {n_ch} channels, the input has {image.n_channels}"
            )
        pc = preprocess_case(image, None, self.plans, self.configuration)
        probs = self.predict_logits(
            pc.data, step=step, mirror=mirror, batch_size=batch_size, precision=precision
        )
        net_img = Image(probs.numpy(), np.array(pc.properties["affine"]), channels=True)
        return self.to_input_grid(
            net_img, image, return_probabilities=return_probabilities, slab=slab
        )

    def to_input_grid(
        self, net_probs: Image, like: Image, *, return_probabilities: bool = False, slab: int = 32
    ) -> tuple[Image, np.ndarray | None]:
        """Map probabilities on the network grid onto ``like``'s grid, slab by slab.

        Linear interpolation in world space; output voxels outside the network
        grid (ITK's half-voxel rule) get the background. When the two grids are
        axis-aligned (one is a permutation/flip and scaling of the other, which
        is what reorienting to RAS and resampling give), the interpolation is done
        separably, one axis at a time, and only inside the network grid's
        bounding box; otherwise each channel goes through
        :func:`medlens.image.resample`. Both give the same values (float32
        rounding apart).
        """
        shape = like.spatial_shape
        region = self.plans.region_based
        k = net_probs.n_channels
        values = self.label_values
        dtype = np.uint8 if max(values) < 256 else np.int16
        labels = np.zeros(shape, dtype=dtype)
        out_probs = np.zeros((k, *shape), dtype=np.float16) if return_probabilities else None
        if out_probs is not None and not region:
            out_probs[0] = 1.0
        arr = np.asarray(net_probs.array)
        plan = _separable_plan(net_probs.affine, like.affine, arr.shape[1:], shape)
        if plan is not None:
            self._map_separable(arr, plan, labels, out_probs, values, slab)
        else:
            self._map_general(net_probs, like, labels, out_probs, values, slab)
        if self.postprocessing or self.fill_holes:
            labels = apply_postprocessing(
                labels, self.plans, self.postprocessing, fill_holes=self.fill_holes
            )
        return Image(labels, like.affine, meta={"source": "medlens.segmentation"}), out_probs

    def _labels_from(self, chans: np.ndarray, values: list[int], dtype: Any) -> np.ndarray:
        """Label map of ``(K, ...)`` probabilities (argmax, or thresholded regions)."""
        if self.plans.region_based:
            lab = np.zeros(chans.shape[1:], dtype=dtype)
            order = self.plans.regions_class_order or tuple(range(1, len(chans) + 1))
            for c, val in enumerate(order):
                lab[chans[c] > 0.5] = val
            return lab
        lut = np.asarray(values, dtype=dtype)
        return lut[np.argmax(chans, axis=0)]

    def _map_separable(
        self,
        arr: np.ndarray,
        plan: list[tuple[int, np.ndarray, np.ndarray, int, int]],
        labels: np.ndarray,
        out_probs: np.ndarray | None,
        values: list[int],
        slab: int,
    ) -> None:
        # plan[e] = (network axis, lower index, weight, first, stop) for output axis e
        box = tuple(slice(p[3], p[4]) for p in plan)
        if any(p[4] <= p[3] for p in plan):
            return
        last = len(plan) - 1
        d_last, i_last, w_last, lo_last, hi_last = plan[last]
        for z0 in range(lo_last, hi_last, slab):
            z1 = min(hi_last, z0 + slab)
            sel = slice(z0 - lo_last, z1 - lo_last)
            i0, w = i_last[sel], w_last[sel]
            j0, j1 = int(i0.min()), int(i0.max()) + 2
            sub = np.take(arr, np.arange(j0, min(j1, arr.shape[d_last + 1])), axis=d_last + 1)
            # (K, *net axes) -> output axes: interpolate along each network axis
            cur = _lerp_axis(sub, d_last + 1, i0 - j0, w)
            for e in range(last):
                d, ie, we = plan[e][:3]
                cur = _lerp_axis(cur, d + 1, ie, we)
            perm = [0] + [plan[e][0] + 1 for e in range(len(plan))]
            cur = np.transpose(cur, perm)
            out_sl = (*box[:last], slice(z0, z1))
            labels[out_sl] = self._labels_from(cur, values, labels.dtype)
            if out_probs is not None:
                out_probs[(slice(None), *out_sl)] = cur

    def _map_general(
        self,
        net_probs: Image,
        like: Image,
        labels: np.ndarray,
        out_probs: np.ndarray | None,
        values: list[int],
        slab: int,
    ) -> None:
        shape = like.spatial_shape
        region = self.plans.region_based
        arr = np.asarray(net_probs.array)
        n_last = shape[-1]
        for z0 in range(0, n_last, slab):
            z1 = min(n_last, z0 + slab)
            sub_shape = (*shape[:-1], z1 - z0)
            off = np.zeros(3)
            off[len(shape) - 1] = z0
            aff = like.affine.copy()
            aff[:3, 3] = like.affine[:3, :3] @ off + like.affine[:3, 3]
            tmpl = Image(np.broadcast_to(np.uint8(0), sub_shape), aff)
            chans = []
            for c in range(arr.shape[0]):
                default = 1.0 if (c == 0 and not region) else 0.0
                ch = Image(arr[c], net_probs.affine)
                chans.append(
                    np.asarray(
                        resample(ch, like=tmpl, interpolation="linear", default=default).array
                    )
                )
            stack = np.stack(chans)
            if out_probs is not None:
                out_probs[..., z0:z1] = stack
            labels[..., z0:z1] = self._labels_from(stack, values, labels.dtype)


def _separable_plan(
    net_affine: np.ndarray,
    out_affine: np.ndarray,
    net_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
) -> list[tuple[int, np.ndarray, np.ndarray, int, int]] | None:
    """Per output axis: the network axis it maps to, lerp indices/weights, inside range.

    None when the grids are not axis-aligned (then the general resampler is used).
    The inside range follows ITK's rule (continuous index in ``[-0.5, n - 0.5]``),
    as :func:`medlens.image.resample`; outside it is edge-extended by clamping,
    as scipy's ``mode="nearest"``.
    """
    n = len(out_shape)
    m = np.linalg.inv(np.asarray(net_affine, dtype=np.float64)) @ np.asarray(
        out_affine, dtype=np.float64
    )
    if n == 2 and (abs(m[2, 3]) > 1e-3 or np.abs(m[2, :2]).max() > 1e-6):
        return None
    mat, off = m[:n, :n], m[:n, 3]
    scale = np.abs(mat).max()
    nz = np.abs(mat) > 1e-9 * scale
    if not (nz.sum(axis=0) == 1).all() or not (nz.sum(axis=1) == 1).all():
        return None
    plan = []
    for e in range(n):
        d = int(np.flatnonzero(nz[:, e])[0])
        coord = mat[d, e] * np.arange(out_shape[e], dtype=np.float64) + off[d]
        size = net_shape[d]
        inside = (coord >= -0.5 - 1e-6) & (coord <= size - 0.5 + 1e-6)
        idx = np.flatnonzero(inside)
        lo, hi = (int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, 0)
        c = np.clip(coord[lo:hi], 0.0, size - 1.0)
        i0 = np.minimum(np.floor(c), max(size - 2, 0)).astype(np.int64)
        w = (c - i0).astype(np.float32)
        plan.append((d, i0, w, lo, hi))
    return plan


def _lerp_axis(a: np.ndarray, axis: int, i0: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Linear interpolation along one axis: ``a[i0] * (1 - w) + a[i0 + 1] * w``."""
    if a.shape[axis] == 1:
        return np.take(a, np.zeros_like(i0), axis=axis)
    shape = [1] * a.ndim
    shape[axis] = len(w)
    wb = w.reshape(shape)
    lo = np.take(a, i0, axis=axis)
    hi = np.take(a, i0 + 1, axis=axis)
    hi -= lo
    hi *= wb
    lo += hi
    return lo


def apply_postprocessing(
    labels: np.ndarray,
    plans: Plans,
    rules: dict[str, bool],
    *,
    fill_holes: dict[str, bool] | None = None,
) -> np.ndarray:
    """Keep only the largest connected component of each label whose rule is true.

    Then fill the enclosed holes of each label whose ``fill_holes`` rule is true
    (only background voxels are filled, so other labels are left alone).
    """
    import cc3d

    from medlens.segmentation._postprocess import fill_holes as _fill

    out = labels.copy()
    for name, keep in rules.items():
        if not keep or name not in plans.labels:
            continue
        v = plans.labels[name]
        mask = np.isin(out, v) if isinstance(v, tuple) else out == v
        if not mask.any():
            continue
        largest = (
            cc3d.largest_k(mask.astype(np.uint8), k=1, connectivity=26 if mask.ndim == 3 else 8) > 0
        )
        drop = mask & ~largest
        out[drop] = 0
    for name, on in (fill_holes or {}).items():
        fv = plans.labels.get(name)
        if not on or fv is None or isinstance(fv, tuple):
            continue
        mask = out == fv
        holes = _fill(mask) & ~mask & (out == 0)
        out[holes] = fv
    return out


def load_predictor(
    model_dir: str | os.PathLike[str],
    *,
    folds: Sequence[str] | None = None,
    checkpoint: str = "checkpoint_final.pt",
    threads: int | None = None,
    backend: str = "torch",
    optimize: bool = True,
) -> Predictor:
    """Load a trained model folder (``plans.json`` + ``fold_*/checkpoint_final.pt``).

    Parameters
    ----------
    model_dir : path
        Folder written by :func:`train`.
    folds : sequence of str, optional
        Fold folder names (``"0"``, ``"all"`` ...); default every fold with the checkpoint.
    checkpoint : str
        Checkpoint file name in each fold folder.
    threads : int, optional
        ``torch.set_num_threads`` (and ONNX Runtime's intra-op threads).
    backend : {"torch", "onnx"}
        Run the networks in torch, or in ONNX Runtime from the
        ``fold_<k>/network.onnx`` files that :func:`medlens.segmentation.export_onnx`
        writes (same outputs within float32 rounding; see ``benchmarks/seg_onnx.py``
        for which is faster).
    optimize : bool
        Torch backend: run the networks through
        :func:`~medlens.segmentation.inference_network` (instance norms as the
        equivalent group norms, oneDNN convolutions; outputs equal within 2e-5),
        in the channels-last layout where one timed forward of the plan's patch
        shows it faster on this machine (:func:`channels_last_is_faster`).
        False keeps the trained modules as built (ONNX export does).

    Raises
    ------
    PredictionError
        If the folder holds no plans or no trained fold, or the backend is unknown.
    """
    from medlens.segmentation._train import load_checkpoint

    root = Path(model_dir)
    if backend not in ("torch", "onnx"):
        raise PredictionError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    if not (root / "plans.json").exists():
        raise PredictionError(f"{root}: not a model folder (no plans.json)")
    plans = Plans.load(root / "plans.json")
    if threads:
        torch.set_num_threads(threads)
    elif plans.calibration.measurements:
        torch.set_num_threads(plans.calibration.threads)
    if folds is None:
        fdirs = sorted(p for p in root.glob("fold_*") if (p / checkpoint).exists())
    else:
        fdirs = [root / (f if str(f).startswith("fold_") else f"fold_{f}") for f in folds]
    if not fdirs:
        raise PredictionError(f"{root}: no fold folder holds {checkpoint}")
    nets = []
    cfg_name = None
    channels_last: bool | None = None
    for fd in fdirs:
        state = load_checkpoint(fd / checkpoint)
        cfg_name = state["configuration"]
        from medlens.segmentation._config import NetworkConfig

        net_cfg = NetworkConfig.from_dict(state["network"])
        net = build_network(net_cfg)
        net.load_state_dict(state["model"])
        net.eval()
        if backend == "torch" and optimize:
            if channels_last is None:  # measured once, on the first fold, outside any case
                cfg0 = plans.configurations[cfg_name]
                channels_last = channels_last_is_faster(
                    net, cfg0.patch_size, net_cfg.in_channels
                )
            net = inference_network(net, channels_last=channels_last)
        if backend == "onnx":
            from medlens.segmentation._onnx import OnnxNetwork, onnx_path

            if not onnx_path(fd).exists():
                raise PredictionError(
                    f"{onnx_path(fd)}: no ONNX file; run `medlens seg export-onnx {root}` first"
                )
            net = OnnxNetwork(onnx_path(fd), threads=threads or torch.get_num_threads())
        nets.append(net)
    assert cfg_name is not None
    post: dict[str, bool] = {}
    fill: dict[str, bool] = {}
    pp = root / "postprocessing.json"
    if pp.exists():
        rules = json.loads(pp.read_text(encoding="utf-8"))
        post = {k: bool(v) for k, v in rules["keep_largest_component"].items()}
        fill = {k: bool(v) for k, v in rules.get("fill_holes", {}).items()}
    return Predictor(
        plans, plans.configurations[cfg_name], nets, [f.name for f in fdirs], post, root, fill
    )


def prediction_metadata(pred: Predictor) -> dict[str, Any]:
    """A short description of a predictor (for reports)."""
    c = pred.configuration
    return {
        "configuration": c.name,
        "spacing": list(c.spacing),
        "patch_size": list(c.patch_size),
        "folds": pred.folds,
        "features": list(c.network.features),
    }
