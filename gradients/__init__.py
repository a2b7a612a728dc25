"""Gradient estimators through contact: zero-order, first-order and alpha-order.

See ``docs/gradients.md`` and ``python -m fingergym.gradients.bench --help``.
"""

from .descent import Trajectory, gradient_descent
from .estimators import (
    AlphaOrder,
    Estimator,
    FirstOrder,
    FirstOrderUnavailable,
    GradientEstimate,
    Objective,
    ZeroOrder,
    aobg,
    bernstein_eps,
    choose_alpha,
    fobg,
    zobg,
)
from .quadrature import SmoothedMoments, smoothed_moments
from .toys import (
    BallParams,
    ball_wall_edge,
    ball_with_wall,
    heaviside,
    pivot_cliff,
    stiff_ramp,
)

__all__ = [
    "AlphaOrder", "BallParams", "Estimator", "FirstOrder", "FirstOrderUnavailable",
    "GradientEstimate", "Objective", "SmoothedMoments", "Trajectory", "ZeroOrder", "aobg",
    "ball_wall_edge", "ball_with_wall", "bernstein_eps", "choose_alpha", "fobg",
    "gradient_descent", "heaviside", "pivot_cliff", "smoothed_moments", "stiff_ramp", "zobg",
]
