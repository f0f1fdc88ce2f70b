"""ONNX export and the ONNX Runtime backend give the torch network's outputs."""

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from medlens.segmentation import NetworkConfig, build_network, preprocess_dataset
from medlens.segmentation._onnx import (
    OnnxNetwork,
    export_network_onnx,
    export_onnx,
    onnx_path,
)
from medlens.segmentation._predict import PredictionError, load_predictor
from medlens.segmentation._train import TrainConfig, train

from .conftest import make_case, tiny_plans, write_dataset

# float32 convolutions summed in a different order by the two runtimes: outputs of
# magnitude ~10 agree to ~1e-5; the bound leaves a factor of 10.
ATOL = 1e-4
RTOL = 1e-4


def test_onnx_network_equals_torch_network(tmp_path):
    torch.manual_seed(0)
    net = build_network(
        NetworkConfig(3, 2, 3, features=(4, 8, 16), strides=((1, 1, 1), (2, 2, 1), (2, 2, 2)))
    ).eval()
    path = export_network_onnx(net, 2, (16, 16, 8), tmp_path / "n.onnx")
    ort_net = OnnxNetwork(path, threads=1)
    for b in (1, 3):  # the batch axis is dynamic
        x = torch.randn(b, 2, 16, 16, 8, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            ref = net(x)
        got = ort_net(x)
        assert isinstance(ref, torch.Tensor)
        assert got.shape == ref.shape == (b, 3, 16, 16, 8)
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=RTOL, atol=ATOL)
    assert net.training is False


def test_onnx_backend_predicts_what_torch_predicts(tmp_path):
    root = write_dataset(tmp_path / "D", n=2)
    ds, plans = tiny_plans(root, iterations=2)
    pre = preprocess_dataset(ds, plans, tmp_path / "pre", workers=1, progress=False)
    model = tmp_path / "model"
    train(pre, plans, model, config=TrainConfig(num_workers=0, threads=1), progress=False)
    with pytest.raises(PredictionError, match="export-onnx"):
        load_predictor(model, backend="onnx")
    files = export_onnx(model)
    assert files == [onnx_path(model / "fold_all")]
    img, _ = make_case(np.random.default_rng(5), shape=(22, 20, 10))
    pt = load_predictor(model, threads=1)
    ox = load_predictor(model, threads=1, backend="onnx")
    assert isinstance(ox.networks[0], OnnxNetwork)
    lab_t, prob_t = pt.predict(img, mirror=True, return_probabilities=True)
    lab_o, prob_o = ox.predict(img, mirror=True, return_probabilities=True)
    assert prob_t is not None and prob_o is not None
    # float16 probabilities: one float16 step near 1 is ~5e-4
    np.testing.assert_allclose(prob_o.astype(np.float32), prob_t.astype(np.float32), atol=1e-3)
    # labels may differ only where two classes tie within that tolerance
    differ = np.asarray(lab_t.array) != np.asarray(lab_o.array)
    top2 = np.sort(prob_t.astype(np.float32), axis=0)[-2:]
    assert np.all((top2[1] - top2[0])[differ] < 2e-3)
    out = export_onnx(model, output=tmp_path / "single.onnx")
    assert out == [tmp_path / "single.onnx"] and out[0].stat().st_size > 0
    with pytest.raises(PredictionError, match="backend"):
        load_predictor(model, backend="tensorrt")
