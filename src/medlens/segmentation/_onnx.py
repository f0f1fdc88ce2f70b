"""ONNX export of trained networks and an ONNX Runtime backend for the predictor.

:func:`export_onnx` writes each fold's network as ``fold_<k>/network.onnx``
(``torch.onnx.export`` with the dynamo exporter, opset 18, a dynamic batch axis
and the configuration's patch size as the spatial shape, which is all the
sliding window ever feeds it). :class:`OnnxNetwork` wraps an
``onnxruntime.InferenceSession`` as a :class:`torch.nn.Module`, so the
predictor, the sliding window and the mirroring TTA run unchanged on either
backend: ``load_predictor(model_dir, backend="onnx")``.

Needs the optional packages ``onnx``, ``onnxscript`` (export) and
``onnxruntime`` (inference); ``benchmarks/seg_onnx.py`` measures whether ONNX
Runtime is faster than torch on this CPU.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlens.errors import MedlensError

__all__ = ["OnnxNetwork", "export_network_onnx", "export_onnx", "onnx_path"]

ONNX_NAME = "network.onnx"
OPSET = 18


def onnx_path(fold_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`export_onnx` writes a fold's network."""
    return Path(fold_dir) / ONNX_NAME


def _need(module: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MedlensError(
            f"{purpose} needs the package {module!r}; install it with "
            "`pip install onnx onnxscript onnxruntime` (see requirements/segmentation.txt)"
        ) from e


def export_network_onnx(
    net: torch.nn.Module,
    in_channels: int,
    patch_size: tuple[int, ...],
    path: str | os.PathLike[str],
) -> Path:
    """Export one network (eval mode, no deep supervision) to an ONNX file.

    Parameters
    ----------
    net : torch.nn.Module
        Maps ``(B, C, *patch)`` to ``(B, K, *patch)`` logits in eval mode.
    in_channels : int
        ``C``.
    patch_size : tuple of int
        Spatial shape of the exported graph (the batch axis is dynamic).
    path : path
        Output ``.onnx`` file, written atomically.

    Returns
    -------
    pathlib.Path
    """
    _need("onnxscript", "ONNX export")
    _need("onnx", "ONNX export")
    from medlens._atomic import atomic_path

    out = Path(path)
    was_training = net.training
    net.eval()
    x = torch.zeros((2, in_channels, *patch_size), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1, max=1024)
    import logging

    # the exporter logs a warning per torchvision operator it cannot register
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with atomic_path(out) as tmp, warnings.catch_warnings():
            # the exporter's own deprecation notices are not the user's concern
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (x,),
                str(tmp),
                input_names=["image"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamo=True,
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
                optimize=True,
            )
    finally:
        net.train(was_training)
        onnx_log.setLevel(level)
    return out


def export_onnx(
    model_dir: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    folds: list[str] | None = None,
) -> list[Path]:
    """Export the trained folds of a model folder to ONNX.

    Parameters
    ----------
    model_dir : path
        Folder written by :func:`medlens.segmentation.train`.
    output : path, optional
        Output file for a single fold; default ``fold_<k>/network.onnx`` in the
        model folder (where ``load_predictor(..., backend="onnx")`` looks).
    folds : list of str, optional
        Folds to export (default every trained fold).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from medlens.segmentation._predict import load_predictor

    pred = load_predictor(model_dir, folds=folds, optimize=False)
    if output is not None and len(pred.networks) != 1:
        raise MedlensError(
            f"{model_dir}: {len(pred.networks)} folds ({', '.join(pred.folds)}); an output "
            "file name needs exactly one (use --folds), or leave it out to write "
            "fold_<k>/network.onnx"
        )
    cfg = pred.configuration
    written = []
    for name, net in zip(pred.folds, pred.networks, strict=True):
        target = Path(output) if output is not None else onnx_path(Path(model_dir) / name)
        written.append(
            export_network_onnx(net, cfg.network.in_channels, tuple(cfg.patch_size), target)
        )
    return written


class OnnxNetwork(torch.nn.Module):
    """An ONNX Runtime session behaving like the eval-mode torch network.

    Parameters
    ----------
    path : path
        ``.onnx`` file from :func:`export_network_onnx`.
    threads : int, optional
        ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``).
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        super().__init__()
        ort = _need("onnxruntime", "ONNX Runtime inference")
        p = Path(path)
        if not p.exists():
            raise MedlensError(f"{p}: no ONNX file (run `medlens seg export-onnx` first)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = p
        self.session = ort.InferenceSession(
            str(p), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a ``(B, C, *patch)`` batch."""
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        out = self.session.run(None, {self.input_name: arr})[0]
        return torch.from_numpy(np.asarray(out))
