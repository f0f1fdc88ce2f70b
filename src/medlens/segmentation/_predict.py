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
from medlens.segmentation._networks import build_network
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
        batch_size: int = 4,
    ) -> torch.Tensor:
        """Fold-averaged probabilities on the preprocessed grid, ``(K, *shape)`` float32."""
        cfg = self.configuration
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
        batch_size: int = 4,
        return_probabilities: bool = False,
        slab: int = 32,
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
            Tiles per forward pass.
        return_probabilities : bool
            Also return float16 probabilities ``(K, *input_shape)`` on the input grid.
        slab : int
            Output slices mapped back at a time (bounds memory).

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
        probs = self.predict_logits(pc.data, step=step, mirror=mirror, batch_size=batch_size)
        net_img = Image(probs.numpy(), np.array(pc.properties["affine"]), channels=True)
        return self.to_input_grid(
            net_img, image, return_probabilities=return_probabilities, slab=slab
        )

    def to_input_grid(
        self, net_probs: Image, like: Image, *, return_probabilities: bool = False, slab: int = 32
    ) -> tuple[Image, np.ndarray | None]:
        """Map probabilities on the network grid onto ``like``'s grid, slab by slab."""
        shape = like.spatial_shape
        region = self.plans.region_based
        k = net_probs.n_channels
        values = self.label_values
        dtype = np.uint8 if max(values) < 256 else np.int16
        labels = np.zeros(shape, dtype=dtype)
        out_probs = np.zeros((k, *shape), dtype=np.float16) if return_probabilities else None
        n_last = shape[-1]
        arr = np.asarray(net_probs.array)
        for z0 in range(0, n_last, slab):
            z1 = min(n_last, z0 + slab)
            sub_shape = (*shape[:-1], z1 - z0)
            off = np.zeros(3)
            off[len(shape) - 1] = z0
            aff = like.affine.copy()
            aff[:3, 3] = like.affine[:3, :3] @ off + like.affine[:3, 3]
            tmpl = Image(np.broadcast_to(np.uint8(0), sub_shape), aff)
            best = None
            lab = np.zeros(sub_shape, dtype=dtype)
            chans = []
            for c in range(k):
                default = 1.0 if (c == 0 and not region) else 0.0
                ch = Image(arr[c], net_probs.affine)
                r = np.asarray(
                    resample(ch, like=tmpl, interpolation="linear", default=default).array
                )
                if out_probs is not None:
                    out_probs[c, ..., z0:z1] = r
                if region:
                    chans.append(r)
                elif best is None:
                    best = r
                else:
                    win = r > best
                    lab[win] = values[c]
                    best = np.where(win, r, best)
            if region:
                order = self.plans.regions_class_order or tuple(range(1, k + 1))
                for c, val in enumerate(order):
                    lab[chans[c] > 0.5] = val
            labels[..., z0:z1] = lab
        if self.postprocessing or self.fill_holes:
            labels = apply_postprocessing(
                labels, self.plans, self.postprocessing, fill_holes=self.fill_holes
            )
        return Image(labels, like.affine, meta={"source": "medlens.segmentation"}), out_probs


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
    for fd in fdirs:
        state = load_checkpoint(fd / checkpoint)
        cfg_name = state["configuration"]
        from medlens.segmentation._config import NetworkConfig

        net = build_network(NetworkConfig.from_dict(state["network"]))
        net.load_state_dict(state["model"])
        net.eval()
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
