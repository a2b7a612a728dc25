"""Experimental: ZoBG / FoBG / AoBG on the box flip-up, FoBG through Drake's AutoDiffXd.

The objective is the terminal cost of an *open-loop* finger trajectory: the finger-centre
targets at a few knots (piecewise-linear in time) are the decision variables ``theta``
(``(K, 2)`` flattened to ``d = 2K``). A finger-position PD law with gravity compensation,
computed inside the rollout (so it is differentiable in ``theta``), drives a minimal planar
Drake plant built here: point finger (sphere on prismatic x/z joints), box on a planar joint
touching the bin through corner spheres, floor and two walls, point contact with the discrete
``lagged`` approximation. Physical parameters come from the shipped scenario
(:func:`fingergym.scenario.load_scenario`) when it is importable.

Cost ``f(theta) = 2 a_T^2 + 0.1 omega_T^2`` with ``a_T`` the box's final angle from vertical
(the seed's flip-up cost at the last step, without effort terms): 0 when the box stands,
``2 (pi/2)^2 = 4.93`` when it lies flat.

``f`` comes from a ``float`` rollout, ``grad f`` from the same rollout in ``AutoDiffXd``
(``diagram.ToAutoDiffXd()``, seeded with ``d`` derivative directions).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .estimators import Array, Objective, bernstein_eps, choose_alpha

SIGMAS = (0.005, 0.02)


@dataclass(frozen=True)
class BoxFlipParams:
    """Geometry, contact and PD gains (defaults = the shipped scenario) and the time grid."""

    box_length: float = 0.2
    box_thickness: float = 0.05
    box_depth: float = 0.3
    box_mass: float = 1.0
    finger_radius: float = 0.01
    finger_mass: float = 1.0
    wall_x: tuple[float, float] = (-0.265, 0.265)
    wall_thickness: float = 0.05
    wall_height: float = 0.21
    friction: float = 1.0
    stiffness: float = 1.0e5
    dissipation: float = 1.0
    approximation: str = "lagged"
    kp: float = 100.0
    kd: float = 20.0
    time_step: float = 0.005
    horizon: float = 2.0
    box_x0: float = 0.0
    finger_start: tuple[float, float] = (-0.12, 0.025)
    # nominal knots (finger-centre targets) at t = horizon * k / K, k = 1..K
    knots: tuple[tuple[float, float], ...] = ((0.156, 0.025), (0.312, 0.211), (0.316, 0.235),
                                              (0.166, 0.254))
    source: str = "defaults"

    @classmethod
    def from_scenario(cls, **overrides: Any) -> BoxFlipParams:
        """Physical parameters from ``fingergym.scenario.load_scenario()`` if available."""
        try:
            from fingergym.scenario import load_scenario

            s = load_scenario()
        except Exception:  # noqa: BLE001 - the scenario module is optional here
            return cls(**overrides)
        kw: dict[str, Any] = dict(
            box_length=s.box.length, box_thickness=s.box.thickness, box_depth=s.box.depth,
            box_mass=s.box.mass, finger_radius=s.finger.radius, finger_mass=s.finger.mass,
            wall_x=tuple(s.bin.wall_x), wall_thickness=s.bin.wall_thickness,
            wall_height=s.bin.wall_height, friction=s.contact.friction,
            stiffness=s.contact.stiffness, dissipation=s.contact.dissipation,
            kp=s.controller.kp, kd=s.controller.kd, source=s.source)
        if s.contact.model == "point" and s.contact.approximation in ("sap", "lagged",
                                                                      "similar"):
            kw["approximation"] = s.contact.approximation
        kw.update(overrides)
        return cls(**kw)

    @property
    def theta0(self) -> Array:
        """Nominal decision variable ``(2K,)``."""
        return np.asarray(self.knots, dtype=np.float64).ravel()


@dataclass
class BoxFlip:
    """The plant (``float`` and ``AutoDiffXd`` copies) and open-loop rollouts of it."""

    params: BoxFlipParams = field(default_factory=BoxFlipParams.from_scenario)

    def __post_init__(self) -> None:
        self._build()

    # -- construction ----------------------------------------------------------------------

    def _build(self) -> None:
        from pydrake.geometry import (
            AddContactMaterial,
            Box,
            CollisionFilterDeclaration,
            GeometrySet,
            ProximityProperties,
            Sphere,
        )
        from pydrake.math import RigidTransform, RotationMatrix
        from pydrake.multibody.plant import (
            AddMultibodyPlant,
            CoulombFriction,
            MultibodyPlantConfig,
        )
        from pydrake.multibody.tree import (
            FixedOffsetFrame,
            PlanarJoint,
            PrismaticJoint,
            SpatialInertia,
            UnitInertia,
        )
        from pydrake.systems.framework import DiagramBuilder

        p = self.params
        builder = DiagramBuilder()
        plant, scene_graph = AddMultibodyPlant(MultibodyPlantConfig(
            time_step=p.time_step, contact_model="point",
            discrete_contact_approximation=p.approximation), builder)
        plant.set_name("boxflip_plant")
        props = ProximityProperties()
        AddContactMaterial(dissipation=p.dissipation, point_stiffness=p.stiffness,
                           friction=CoulombFriction(p.friction, p.friction), properties=props)
        world = plant.world_body()
        span = p.wall_x[1] - p.wall_x[0] + 2 * p.wall_thickness
        depth = p.box_depth + 0.04
        plant.RegisterCollisionGeometry(world, RigidTransform([0.5 * sum(p.wall_x), 0, -0.025]),
                                        Box(span, depth, 0.05), "floor", props)
        for name, x in (("wall_left", p.wall_x[0] - 0.5 * p.wall_thickness),
                        ("wall_right", p.wall_x[1] + 0.5 * p.wall_thickness)):
            plant.RegisterCollisionGeometry(world, RigidTransform([x, 0, 0.5 * p.wall_height]),
                                            Box(p.wall_thickness, depth, p.wall_height), name,
                                            props)
        finger = plant.AddModelInstance("finger")
        carriage = plant.AddRigidBody("carriage", finger, SpatialInertia.Zero())
        ball = plant.AddRigidBody("finger", finger, SpatialInertia(
            p.finger_mass, np.zeros(3), UnitInertia.SolidSphere(p.finger_radius)))
        jx = plant.AddJoint(PrismaticJoint("finger_x", plant.world_frame(),
                                           carriage.body_frame(), [1, 0, 0]))
        jz = plant.AddJoint(PrismaticJoint("finger_z", carriage.body_frame(), ball.body_frame(),
                                           [0, 0, 1]))
        plant.AddJointActuator("finger_x", jx)
        plant.AddJointActuator("finger_z", jz)
        finger_geom = plant.RegisterCollisionGeometry(ball, RigidTransform(),
                                                      Sphere(p.finger_radius), "finger", props)
        box_instance = plant.AddModelInstance("box")
        box = plant.AddRigidBody("box", box_instance, SpatialInertia(
            p.box_mass, np.zeros(3),
            UnitInertia.SolidBox(p.box_length, p.box_thickness, p.box_depth)))
        plane = plant.AddFrame(FixedOffsetFrame(
            "box_plane", plant.world_frame(),
            RigidTransform(RotationMatrix.MakeXRotation(np.pi / 2))))
        box_joint = plant.AddJoint(PlanarJoint("box_joint", plane, box.body_frame()))
        shape = plant.RegisterCollisionGeometry(
            box, RigidTransform(), Box(p.box_length, p.box_thickness, p.box_depth), "box",
            props)
        rho = 0.002
        hx, hy = 0.5 * p.box_length - rho, 0.5 * p.box_thickness - rho
        corners = [plant.RegisterCollisionGeometry(box, RigidTransform([sx * hx, sy * hy, 0]),
                                                   Sphere(rho), f"corner_{i}", props)
                   for i, (sx, sy) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1)))]
        plant.Finalize()
        bin_ids = plant.GetCollisionGeometriesForBody(world)
        scene_graph.collision_filter_manager().Apply(
            CollisionFilterDeclaration()
            .ExcludeBetween(GeometrySet([shape]), GeometrySet(bin_ids))
            .ExcludeBetween(GeometrySet(corners), GeometrySet([finger_geom])))
        self._diagram = builder.Build()
        self._diagram_ad = self._diagram.ToAutoDiffXd()
        self._plant_name = plant.get_name()
        self._iq = {"fx": jx.position_start(), "fz": jz.position_start(),
                    "box": box_joint.position_start()}
        self._iv = {"fx": jx.velocity_start(), "fz": jz.velocity_start(),
                    "box": box_joint.velocity_start()}
        self._nq = plant.num_positions()

    # -- rollouts --------------------------------------------------------------------------

    def _targets(self, theta: Any, t: float) -> tuple[Any, Any]:
        """Piecewise-linear finger target at time ``t`` (works for float and AutoDiffXd)."""
        p = self.params
        knots = [p.finger_start] + [(theta[2 * k], theta[2 * k + 1])
                                    for k in range(len(theta) // 2)]
        seg = p.horizon / (len(knots) - 1)
        i = min(int(t / seg), len(knots) - 2)
        s = (t - i * seg) / seg
        (x0, z0), (x1, z1) = knots[i], knots[i + 1]
        return x0 * (1 - s) + x1 * s, z0 * (1 - s) + z1 * s

    def rollout(self, theta: Array | Any, autodiff: bool = False) -> tuple[Any, Any]:
        """Simulate one open-loop trajectory. Returns the final ``(q, v)`` of the plant.

        ``theta``: ``(d,)`` floats, or (``autodiff``) AutoDiffXd with derivatives.
        """
        from pydrake.autodiffutils import AutoDiffXd
        from pydrake.systems.analysis import Simulator_

        p = self.params
        diagram = self._diagram_ad if autodiff else self._diagram
        T = AutoDiffXd if autodiff else float
        plant = diagram.GetSubsystemByName(self._plant_name)
        ctx = diagram.CreateDefaultContext()
        pctx = plant.GetMyMutableContextFromRoot(ctx)
        q0 = np.zeros(self._nq)
        q0[self._iq["box"]:self._iq["box"] + 3] = [p.box_x0, 0.5 * p.box_thickness, 0.0]
        q0[self._iq["fx"]], q0[self._iq["fz"]] = p.finger_start
        plant.SetPositions(pctx, np.array([T(v) for v in q0]) if autodiff else q0)
        sim = Simulator_[T](diagram, ctx)
        sim.Initialize()
        port = plant.get_actuation_input_port()
        g = 9.81 * p.finger_mass
        steps = int(round(p.horizon / p.time_step))
        ifx, ifz = self._iq["fx"], self._iq["fz"]
        vfx, vfz = self._iv["fx"], self._iv["fz"]
        for k in range(steps):
            tx, tz = self._targets(theta, k * p.time_step)
            q = plant.GetPositions(pctx)
            v = plant.GetVelocities(pctx)
            u = np.array([p.finger_mass * (p.kp * (tx - q[ifx]) - p.kd * v[vfx]),
                          p.finger_mass * (p.kp * (tz - q[ifz]) - p.kd * v[vfz]) + g])
            port.FixValue(pctx, u)
            sim.AdvanceTo((k + 1) * p.time_step)
        return plant.GetPositions(pctx), plant.GetVelocities(pctx)

    def _cost(self, q: Any, v: Any) -> Any:
        theta = q[self._iq["box"] + 2]
        omega = v[self._iv["box"] + 2]
        # angle from vertical, (theta mod pi) - pi/2, written so AutoDiffXd passes through
        val = theta.value() if hasattr(theta, "value") else float(theta)
        a = theta - math.pi * math.floor(val / math.pi) - math.pi / 2
        return 2.0 * a * a + 0.1 * omega * omega

    def cost(self, theta: Array) -> float:
        """``f(theta)`` from a float rollout."""
        q, v = self.rollout(np.asarray(theta, dtype=np.float64))
        return float(self._cost(q, v))

    def cost_and_grad(self, theta: Array) -> tuple[float, Array]:
        """``f(theta)`` and ``grad f(theta)`` from one AutoDiffXd rollout."""
        from pydrake.autodiffutils import ExtractGradient, InitializeAutoDiff

        th = InitializeAutoDiff(np.asarray(theta, dtype=np.float64)).ravel()
        q, v = self.rollout(th, autodiff=True)
        c = self._cost(q, v)
        return float(c.value()), ExtractGradient(np.array([c]))[0]

    def box_state(self, theta: Array) -> tuple[float, float, float]:
        """Final box ``(x, z, angle)`` of a float rollout (for inspection)."""
        q, _ = self.rollout(np.asarray(theta, dtype=np.float64))
        i = self._iq["box"]
        return float(q[i]), float(q[i + 1]), float(q[i + 2])

    def objective(self) -> Objective:
        """Batched :class:`Objective` (value: float rollouts; grad: AutoDiffXd rollouts)."""
        d = self.params.theta0.size

        def value(x: Array) -> Array:
            return np.array([self.cost(r) for r in x])

        def grad(x: Array) -> Array:
            return np.array([self.cost_and_grad(r)[1] for r in x]).reshape(-1, d)

        return Objective("boxflip", d, value, grad)


# ---------------------------------------------------------------------------------------------
# the study


def _chunks_alpha(z: Array, g: Array, n: int, gamma: float, lipschitz: float,
                  confidence: float) -> dict[str, float]:
    """Apply the AoBG rule to disjoint chunks of ``n`` shared samples: mean alpha etc."""
    m = (z.shape[0] // n) * n
    if m == 0:
        return {"n": n, "chunks": 0}
    zc = z[:m].reshape(-1, n, z.shape[1])
    gc = g[:m].reshape(-1, n, g.shape[1])
    zm, gm = zc.mean(axis=1), gc.mean(axis=1)
    v0 = np.einsum("bnd,bnd->b", zc - zm[:, None], zc - zm[:, None]) / (n - 1)
    v1 = np.einsum("bnd,bnd->b", gc - gm[:, None], gc - gm[:, None]) / (n - 1)
    eps = bernstein_eps(v0, n, z.shape[1], lipschitz, confidence)
    alpha = choose_alpha(gm, zm, v1, v0, eps, gamma)
    alpha_bar = v0 / np.maximum(v0 + v1, 1e-300)
    return {"n": n, "chunks": int(zc.shape[0]), "alpha_mean": float(alpha.mean()),
            "alpha_bar_mean": float(alpha_bar.mean()),
            "alpha_zero_frac": float(np.mean(alpha == 0.0)), "eps_mean": float(eps.mean()),
            "bias_hat_mean": float(np.linalg.norm(gm - zm, axis=1).mean())}


def run_boxflip_study(reps: int | None = None, seed: int = 0, quick: bool = False,
                      progress: bool = True, sigmas: tuple[float, ...] = SIGMAS,
                      gamma: float | None = None, confidence: float = 0.95) -> dict[str, Any]:
    """ZoBG vs FoBG on the box flip-up at the nominal knots, for each ``sigma``.

    For each sigma, ``reps`` perturbations ``w_i`` are drawn; one AutoDiffXd rollout per
    sample gives both ``f(theta0 + w_i)`` (ZoBG summand) and ``grad f`` (FoBG summand).
    Reports pooled means (FoBG - ZoBG = FoBG's bias, ZoBG being unbiased), per-sample
    variances, the implied std of N-sample estimates and the alpha the AoBG rule picks.
    """
    from tqdm import tqdm

    reps = reps if reps is not None else (24 if quick else 200)
    t_build = time.perf_counter()
    flip = BoxFlip()
    build_s = time.perf_counter() - t_build
    p = flip.params
    theta0 = p.theta0
    d = theta0.size
    rng = np.random.default_rng(seed)

    t0 = time.perf_counter()
    f0 = flip.cost(theta0)
    float_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    f0_ad, g0 = flip.cost_and_grad(theta0)
    ad_s = time.perf_counter() - t0
    # AutoDiffXd vs central finite differences at the nominal: with a tiny step the two must
    # agree if AutoDiffXd differentiates the simulated map correctly; the coarse step shows
    # how rough the map is on the scale of the smoothing.
    def central(h: float) -> Array:
        return np.array([(flip.cost(theta0 + h * e) - flip.cost(theta0 - h * e)) / (2 * h)
                         for e in np.eye(d)])

    fd_fine, fd_coarse = central(1e-7), central(1e-4)
    x, z, ang = flip.box_state(theta0)
    result: dict[str, Any] = {
        "params": {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in p.__dict__.items()},
        "dim": d, "reps": reps, "confidence": confidence,
        "nominal": {"cost": f0, "cost_autodiff": f0_ad, "grad_autodiff": g0.tolist(),
                    "grad_central_fd": fd_fine.tolist(), "fd_step": 1e-7,
                    "grad_central_fd_coarse": fd_coarse.tolist(), "fd_step_coarse": 1e-4,
                    "box_final": {"x": x, "z": z, "theta": ang}},
        "seconds": {"build": build_s, "float_rollout": float_s, "autodiff_rollout": ad_s},
        "sigmas": [],
    }
    bar = tqdm(total=reps * len(sigmas), desc="boxflip rollouts", disable=not progress,
               leave=False)
    t_study = time.perf_counter()
    for sigma in sigmas:
        w = rng.normal(0.0, sigma, size=(reps, d))
        f = np.empty(reps)
        g = np.empty((reps, d))
        for i in range(reps):
            f[i], g[i] = flip.cost_and_grad(theta0 + w[i])
            bar.update()
        zs = (f - f0)[:, None] * w / sigma**2
        zm, gm = zs.mean(axis=0), g.mean(axis=0)
        z_se = zs.std(axis=0, ddof=1) / math.sqrt(reps)
        g_se = g.std(axis=0, ddof=1) / math.sqrt(reps)
        diff = gm - zm
        diff_se = (zs - g).std(axis=0, ddof=1) / math.sqrt(reps)  # paired samples
        var0 = float(np.sum(zs.var(axis=0, ddof=1)))
        var1 = float(np.sum(g.var(axis=0, ddof=1)))
        spread = float(np.max(np.abs(f - f0)))
        lipschitz = 2.0 * spread / sigma
        gam = gamma if gamma is not None else 0.25 * float(np.linalg.norm(zm))
        flipped = int(np.sum(f < 0.5))  # |angle from vertical| < 0.5 rad at the end
        result["sigmas"].append({
            "sigma": sigma, "cost_mean": float(f.mean()), "cost_min": float(f.min()),
            "cost_max": float(f.max()), "stood_up_frac": flipped / reps,
            "zobg_mean": zm.tolist(), "zobg_se": z_se.tolist(),
            "fobg_mean": gm.tolist(), "fobg_se": g_se.tolist(),
            "fobg_minus_zobg": diff.tolist(), "fobg_minus_zobg_se": diff_se.tolist(),
            "fobg_bias_norm": float(np.linalg.norm(diff)),
            "fobg_bias_z": float(np.max(np.abs(diff) / np.maximum(diff_se, 1e-300))),
            "zobg_norm": float(np.linalg.norm(zm)), "fobg_norm": float(np.linalg.norm(gm)),
            "cosine_fobg_zobg": float(zm @ gm / max(np.linalg.norm(zm) * np.linalg.norm(gm),
                                                      1e-300)),
            "var_zero": var0, "var_first": var1,
            "std_n10": {"zobg": math.sqrt(var0 / 10), "fobg": math.sqrt(var1 / 10)},
            "std_n50": {"zobg": math.sqrt(var0 / 50), "fobg": math.sqrt(var1 / 50)},
            "fobg_sample_norm_quantiles": dict(zip(
                ("q10", "q50", "q90", "max"),
                np.quantile(np.linalg.norm(g, axis=1), [0.1, 0.5, 0.9, 1.0]).tolist(),
                strict=True)),
            "zobg_sample_norm_quantiles": dict(zip(
                ("q10", "q50", "q90", "max"),
                np.quantile(np.linalg.norm(zs, axis=1), [0.1, 0.5, 0.9, 1.0]).tolist(),
                strict=True)),
            "aobg": {"gamma": gam, "lipschitz": lipschitz, "spread": spread,
                     "rule": [_chunks_alpha(zs, g, n, gam, lipschitz, confidence)
                              for n in (10, 50) if n <= reps]},
        })
    bar.close()
    result["seconds"]["study"] = time.perf_counter() - t_study
    result["seconds"]["per_autodiff_rollout"] = result["seconds"]["study"] / (
        reps * len(sigmas))
    return result


def format_report(res: dict[str, Any]) -> str:
    """Readable summary of :func:`run_boxflip_study`."""
    nom = res["nominal"]
    lines = [
        f"Box flip-up (Drake, {res['params']['approximation']} point contact, "
        f"dt={res['params']['time_step']}s, horizon {res['params']['horizon']}s, "
        f"d={res['dim']} knot coordinates, {res['reps']} samples per sigma)",
        f"nominal cost {nom['cost']:.4f}; final box theta {nom['box_final']['theta']:.3f} rad",
        "AutoDiffXd grad        " + np.array2string(np.array(nom["grad_autodiff"]),
                                                      precision=4),
        "central FD, h=1e-7     " + np.array2string(np.array(nom["grad_central_fd"]),
                                                      precision=4),
        "central FD, h=1e-4     " + np.array2string(np.array(nom["grad_central_fd_coarse"]),
                                                      precision=4),
    ]
    for s in res["sigmas"]:
        rule = ", ".join(f"N={r['n']}: alpha {r['alpha_mean']:.2f} "
                         f"(alpha=0 in {r['alpha_zero_frac']:.0%}; inverse-variance optimum "
                         f"{r['alpha_bar_mean']:.1e})" for r in s["aobg"]["rule"]
                         if r.get("chunks"))
        fq, zq = s["fobg_sample_norm_quantiles"], s["zobg_sample_norm_quantiles"]
        lines += [
            f"sigma={s['sigma']}: cost {s['cost_mean']:.3f} [{s['cost_min']:.3f}, "
            f"{s['cost_max']:.3f}], stood up {s['stood_up_frac']:.0%}",
            f"  |ZoBG|={s['zobg_norm']:.3g}  |FoBG|={s['fobg_norm']:.3g}  "
            f"|FoBG-ZoBG|={s['fobg_bias_norm']:.3g} (max z-score {s['fobg_bias_z']:.1f})  "
            f"cos={s['cosine_fobg_zobg']:.2f}",
            f"  std of one N=50 estimate: ZoBG {s['std_n50']['zobg']:.3g}, "
            f"FoBG {s['std_n50']['fobg']:.3g}",
            f"  per-sample |grad| median/max: ZoBG {zq['q50']:.3g}/{zq['max']:.3g}, "
            f"FoBG {fq['q50']:.3g}/{fq['max']:.3g}",
            f"  AoBG rule (gamma={s['aobg']['gamma']:.3g}, L={s['aobg']['lipschitz']:.3g}): "
            + rule,
        ]
    sec = res["seconds"]
    lines.append(f"time: float rollout {sec['float_rollout']:.3f}s, AutoDiffXd rollout "
                 f"{sec['per_autodiff_rollout']:.3f}s, study {sec['study']:.1f}s")
    return "\n".join(lines)
