"""The ordered offset scan of ``medlens.metrics._nearest`` against SciPy's exact EDT.

Squared distances at random query points of random 3D target sets, anisotropic spacing,
every line axis, scan radii that resolve none, some or all of the points; unresolved
points go through the plane-wise envelope transform. Tolerance: relative 1e-12 (both are float64
sums of the same squared offsets).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("numba")

from medlens.metrics import _nearest


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_scan_and_plane_equal_scipy_edt(seed, axis):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 24, 3))
    spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, 3))
    target = rng.random(shape) < rng.uniform(0.002, 0.2)
    target.flat[rng.integers(target.size)] = True
    expected = ndimage.distance_transform_edt(~target, sampling=spacing).reshape(-1) ** 2
    query = np.flatnonzero(rng.random(shape) < 0.4)
    g = _nearest.line_distances(target, axis, spacing[axis])
    for radius in (1e-3, 2.0, 1e3):
        d2 = _nearest.scan_distances(g, axis, query, spacing, radius)
        resolved = d2 >= 0
        if radius == 1e3:
            assert resolved.all()
        np.testing.assert_allclose(d2[resolved], expected[query][resolved], rtol=1e-12, atol=0)
        env = _nearest.envelope_distances(g, axis, query[~resolved], spacing)
        np.testing.assert_allclose(env, expected[query][~resolved], rtol=1e-12, atol=1e-12)
    # the envelope alone, for every query point
    env = _nearest.envelope_distances(g, axis, query, spacing)
    np.testing.assert_allclose(env, expected[query], rtol=1e-12, atol=1e-12)


def test_line_distances_of_a_line_without_target():
    target = np.zeros((4, 2, 1), dtype=bool)
    target[1, 0, 0] = True
    g = _nearest.line_distances(target, 0, 2.0)
    np.testing.assert_array_equal(g[:, 0, 0], [4.0, 0.0, 4.0, 16.0])
    assert np.isinf(g[:, 1, 0]).all()


def test_offset_table_sorted_and_complete():
    ob, oc, d2 = _nearest.offset_table(0.8, 2.5, 50, 50, 5.0)
    assert np.all(np.diff(d2) >= 0)
    np.testing.assert_allclose(d2, (ob * 0.8) ** 2 + (oc * 2.5) ** 2)
    brute = [
        (b, c) for b in range(-7, 8) for c in range(-3, 4) if (b * 0.8) ** 2 + (c * 2.5) ** 2 <= 25
    ]
    assert sorted(zip(ob.tolist(), oc.tolist(), strict=True)) == sorted(brute)


def test_import_does_not_load_numba():
    import subprocess
    import sys

    code = "import sys, medlens, medlens.metrics; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout.decode("utf-8").strip() == "False"


@pytest.mark.parametrize("seed", range(6))
def test_surface_kernels_equal_numpy(seed):
    from medlens.metrics._surface import _border_voxels, _neighbour_codes

    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 15, 3))
    padded = np.zeros(tuple(n + 2 for n in shape), dtype=bool)
    padded[1:-1, 1:-1, 1:-1] = rng.random(shape) < rng.uniform(0.1, 0.9)
    code = _neighbour_codes(padded)
    mask, flat, codes = _nearest.surfel_elements(padded)
    np.testing.assert_array_equal(mask, (code > 0) & (code < 255))
    np.testing.assert_array_equal(flat, np.flatnonzero(mask))
    np.testing.assert_array_equal(codes, code.reshape(-1)[flat])
    np.testing.assert_array_equal(_nearest.border_voxels(padded), _border_voxels(padded))
