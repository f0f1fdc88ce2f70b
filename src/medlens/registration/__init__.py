"""Image registration in RAS+ world space: transforms, similarity, optimisation.

One direction convention everywhere (ITK's): a transform maps a point of the
**fixed** image's world space to the corresponding point of the **moving**
image's world space, and the moved image is the moving image pulled onto the
fixed grid through it, ``moved(x) = moving(T(x))``.

The transform types, warping and ITK file I/O need only NumPy, SciPy and
SimpleITK. :func:`register` and the similarity losses use torch, which is
imported only when one of them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from medlens.registration._itk import (
    from_sitk_transform,
    read_displacement_field,
    read_transform,
    to_sitk_transform,
    write_displacement_field,
    write_transform,
)
from medlens.registration._transforms import (
    AffineTransform,
    CompositeTransform,
    DisplacementField,
    Transform,
    TransformError,
    VelocityField,
    compose,
    euler_angles,
    jacobian_determinant,
    rigid_transform,
    similarity_transform,
    to_displacement_field,
)
from medlens.registration._warp import transform_points, warp_image

if TYPE_CHECKING:  # pragma: no cover
    from medlens.registration._optimize import (
        FinalMetrics,
        LevelReport,
        RegistrationError,
        RegistrationResult,
        center_of_mass,
        initial_transform,
        principal_axes,
        register,
    )
    from medlens.registration._similarity import (
        FeatureLoss,
        GradientEncoder,
        lncc_loss,
        mattes_mi_loss,
        mse_loss,
        ncc_loss,
    )

_LAZY = {
    "FinalMetrics": "_optimize",
    "LevelReport": "_optimize",
    "RegistrationError": "_optimize",
    "RegistrationResult": "_optimize",
    "center_of_mass": "_optimize",
    "initial_transform": "_optimize",
    "principal_axes": "_optimize",
    "register": "_optimize",
    "FeatureLoss": "_similarity",
    "GradientEncoder": "_similarity",
    "lncc_loss": "_similarity",
    "mattes_mi_loss": "_similarity",
    "mse_loss": "_similarity",
    "ncc_loss": "_similarity",
}

__all__ = [
    "AffineTransform",
    "CompositeTransform",
    "DisplacementField",
    "FeatureLoss",
    "FinalMetrics",
    "GradientEncoder",
    "LevelReport",
    "RegistrationError",
    "RegistrationResult",
    "Transform",
    "TransformError",
    "VelocityField",
    "center_of_mass",
    "compose",
    "euler_angles",
    "from_sitk_transform",
    "initial_transform",
    "jacobian_determinant",
    "lncc_loss",
    "mattes_mi_loss",
    "mse_loss",
    "ncc_loss",
    "principal_axes",
    "read_displacement_field",
    "read_transform",
    "register",
    "rigid_transform",
    "similarity_transform",
    "to_displacement_field",
    "to_sitk_transform",
    "transform_points",
    "warp_image",
    "write_displacement_field",
    "write_transform",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod = importlib.import_module(f"medlens.registration.{_LAZY[name]}")
        return getattr(mod, name)
    raise AttributeError(f"module 'medlens.registration' has no attribute {name!r}")
