"""MRI reconstruction: FFTs, sampling masks, linear operators, coil maps and solvers.

NumPy/SciPy/PyWavelets only; the learned models (:mod:`medlens.reconstruction.varnet`)
and the torch FFTs (:mod:`medlens.reconstruction._fft_torch`) import torch on
demand and are not loaded here.

Conventions: k-space is centred with ``norm="ortho"``; multi-coil arrays are
``(C, H, W)`` with the coil axis first; line masks undersample the last axis.
"""

from __future__ import annotations

from medlens.reconstruction._algorithms import (
    SENSE_LAMDAS,
    IterationInfo,
    SenseParameters,
    calibration_noise_level,
    conjugate_gradient,
    cross_validated_iterations,
    cross_validated_parameters,
    fista,
    grappa,
    grappa_reconstruction,
    infer_mask,
    l1_wavelet_reconstruction,
    mad_noise_level,
    sense_reconstruction,
    tv_reconstruction,
    zero_filled,
)
from medlens.reconstruction._coils import espirit_maps, expected_rss, lowres_maps, rss, walsh_maps
from medlens.reconstruction._fft import fft2c, fftc, ifft2c, ifftc
from medlens.reconstruction._linop import (
    FFT,
    Add,
    Compose,
    FiniteDifference,
    Identity,
    Linop,
    Multiply,
    Sum,
    Wavelet,
    sense_operator,
)
from medlens.reconstruction._masks import (
    EquiSpacedMaskFunc,
    RandomMaskFunc,
    acs_bounds,
    cmrxrecon_mask,
    default_center_fraction,
    equispaced_mask,
    poisson_disc_mask,
    random_mask,
    variable_density_mask,
)
from medlens.reconstruction._run import (
    CLASSICAL_METHODS,
    MAGNITUDES,
    MAP_ESTIMATORS,
    EspiritCalibration,
    calibration_size,
    espirit_calibration,
    estimate_maps,
    reconstruct_slice,
)
from medlens.reconstruction._simulate import (
    MASK_KINDS,
    SimulatedKspace,
    birdcage_maps,
    line_or_2d_mask,
    object_mask,
    simulate_kspace,
    smooth_phase,
)

__all__ = [
    "CLASSICAL_METHODS",
    "FFT",
    "MAGNITUDES",
    "MAP_ESTIMATORS",
    "MASK_KINDS",
    "SENSE_LAMDAS",
    "Add",
    "Compose",
    "EquiSpacedMaskFunc",
    "EspiritCalibration",
    "FiniteDifference",
    "Identity",
    "IterationInfo",
    "Linop",
    "Multiply",
    "RandomMaskFunc",
    "SenseParameters",
    "SimulatedKspace",
    "Sum",
    "Wavelet",
    "acs_bounds",
    "birdcage_maps",
    "calibration_noise_level",
    "calibration_size",
    "cmrxrecon_mask",
    "conjugate_gradient",
    "cross_validated_iterations",
    "cross_validated_parameters",
    "default_center_fraction",
    "equispaced_mask",
    "espirit_calibration",
    "espirit_maps",
    "estimate_maps",
    "expected_rss",
    "fft2c",
    "fftc",
    "fista",
    "grappa",
    "grappa_reconstruction",
    "ifft2c",
    "ifftc",
    "infer_mask",
    "l1_wavelet_reconstruction",
    "line_or_2d_mask",
    "lowres_maps",
    "mad_noise_level",
    "object_mask",
    "poisson_disc_mask",
    "random_mask",
    "reconstruct_slice",
    "rss",
    "sense_operator",
    "sense_reconstruction",
    "simulate_kspace",
    "smooth_phase",
    "tv_reconstruction",
    "variable_density_mask",
    "walsh_maps",
    "zero_filled",
]
