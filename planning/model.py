"""The convex quasi-dynamic (CQDC) model of the flip-up scene, exact and log-barrier smoothed.

Coordinates ``q`` (5,) are the flip-up observation's positions, read by name from the task's
layout (groups ``box_q`` then ``robot_q``): the box ``q_u = (x, z, theta)`` is unactuated, the
finger ``q_a = (x, z)`` is actuated and impedance-controlled with stiffness ``K_a``; the input
``u`` (2,) is the commanded finger position [m]. One step of duration ``h`` solves (seed 003)

    min_dq 1/2 dq^T Q dq + b^T dq   s.t.  J_n[i] dq + phi_i >= mu_i |J_t[i] dq|   (dual cone)

with ``Q = diag(M_u / h, h K_a)``, ``b = -h [tau_u; K_a (u - q_a)]`` (the finger's gravity is
compensated by its controller). The scene is planar, so each dual cone is exactly the
intersection of two half-planes ``(J_n +- mu J_t) dq + phi >= 0`` (the polyhedral cone is no
approximation here) and the exact step is a QP, solved with Drake's Clarabel. The smoothed
step replaces the constraints by ``-(1/kappa) sum log(.)`` -- which for each contact is the
seed's ``log[(J_n dq + phi)^2 / mu^2 - (J_t dq)^2]`` up to a constant -- and is solved by damped
Newton; its derivatives come from the implicit-function theorem.

Kinematics, signed distances and contact Jacobians come from the env's own MultibodyPlant and
SceneGraph (:func:`fingergym.sim.plant.add_world`), built from the same scenario.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydrake.multibody.tree import JacobianWrtVariable
from pydrake.solvers import ClarabelSolver, MathematicalProgram
from pydrake.systems.framework import DiagramBuilder

from fingergym.scaling import ActionScaling
from fingergym.scenario import Scenario
from fingergym.sim.params import EpisodeParams, nominal_params
from fingergym.sim.plant import add_world

NQ = 5                  # [box x, z, theta, finger x, z]
BOX_Q = slice(0, 3)     # of q: the layout's box_q ...
FINGER_Q = slice(3, 5)  # ... then robot_q
GRAVITY = 9.81          # [m/s^2], Drake's default
CONTACT_RANGE = 0.1     # [m] pairs farther apart than this are left out of a step
MIN_GAP = 1e-6          # [m] penetrations are read as this gap


@dataclass
class Contacts:
    """The contact pairs of one configuration (m pairs)."""

    phi: np.ndarray    # (m,) signed distances [m]
    Jn: np.ndarray     # (m, 5) d phi / d q
    Jt: np.ndarray     # (m, 5) tangential (in-plane) velocity Jacobians
    mu: np.ndarray     # (m,) friction coefficients
    names: list[str]   # "geometryA|geometryB"


@dataclass
class StepProblem:
    """One step's convex program: min 1/2 dq^T Q dq + b^T dq  s.t.  G dq + g0 >= 0.

    Rows of ``G`` come in pairs per contact (the two edges of the planar dual cone);
    ``dg0_dq`` (rows, 5) is d g0 / d q (the rows' ``J_n``: the Jacobians' own change with q
    is neglected there, as in Pang et al.; ``dG_dq`` adds it); ``db_du`` (5, 2) and ``db_dq``
    (5, 5) the input terms.
    """

    Q: np.ndarray
    b: np.ndarray
    G: np.ndarray
    g0: np.ndarray
    dg0_dq: np.ndarray
    db_du: np.ndarray
    db_dq: np.ndarray
    contacts: Contacts
    dG_dq: np.ndarray | None = None  # (5, rows, 5): d G / d q_j, when asked for


@dataclass
class StepResult:
    """A solved step: ``dq`` (5,), ``impulses`` (rows,) [N s] on the rows of
    :class:`StepProblem` (cone edges, then the two rotation-limit rows), ``q_next``."""

    dq: np.ndarray
    impulses: np.ndarray
    q_next: np.ndarray
    iterations: int = 0


def solve_exact(p: StepProblem) -> tuple[np.ndarray, np.ndarray]:
    """The exact (unsmoothed) step with Drake's Clarabel: returns ``dq`` and the edge impulses
    (the constraints' duals, >= 0)."""
    prog = MathematicalProgram()
    dq = prog.NewContinuousVariables(len(p.b), "dq")
    prog.AddQuadraticCost(p.Q, p.b, dq, is_convex=True)
    con = None
    if len(p.g0):
        con = prog.AddLinearConstraint(p.G, -p.g0, np.full(len(p.g0), np.inf), dq)
    result = ClarabelSolver().Solve(prog)
    if not result.is_success():
        raise RuntimeError("exact quasi-dynamic step: Clarabel failed "
                           f"({result.get_solution_result()})")
    lam = np.asarray(result.GetDualSolution(con)) if con is not None else np.zeros(0)
    return np.asarray(result.GetSolution(dq)), lam


def _interior_start(p: StepProblem, margin: float) -> np.ndarray:
    """A strictly feasible ``dq`` for Newton: 0 if it is one, else the smallest step that
    clears every row by ``margin`` (a QP, Clarabel)."""
    dq0 = np.zeros(len(p.b))
    if len(p.g0) == 0 or np.min(p.g0) > 0:
        return dq0
    prog = MathematicalProgram()
    dq = prog.NewContinuousVariables(len(p.b), "dq")
    prog.AddQuadraticCost(p.Q, np.zeros(len(p.b)), dq, is_convex=True)
    prog.AddLinearConstraint(p.G, margin - p.g0, np.full(len(p.g0), np.inf), dq)
    result = ClarabelSolver().Solve(prog)
    if not result.is_success():
        raise RuntimeError("barrier step: no strictly feasible start "
                           f"({result.get_solution_result()}; pairs {p.contacts.names})")
    return np.asarray(result.GetSolution(dq))


def solve_barrier(p: StepProblem, kappa: float, *, tol: float = 1e-10,
                  max_iter: int = 100) -> tuple[np.ndarray, np.ndarray, int]:
    """The log-barrier step ``min 1/2 dq^T Q dq + b^T dq - (1/kappa) sum log(G dq + g0)``.

    Its optimum is the point of the central path with ``lambda_i s_i = 1/kappa``, found by
    primal-dual Newton (fraction-to-boundary steps; ~10-20 iterations, where plain damped
    Newton on the barrier took ~50). Returns ``dq``, the impulses ``lambda = 1 / (kappa s)``
    [N s] and the iteration count.
    """
    dq = _interior_start(p, margin=min(1e-4, 1.0 / kappa))
    m = len(p.g0)
    if m == 0:
        return -np.linalg.solve(p.Q, p.b), np.zeros(0), 0
    mu = 1.0 / kappa
    s = p.G @ dq + p.g0
    lam = mu / s
    it = 0
    while it < max_iter:
        it += 1
        r_d = p.Q @ dq + p.b - p.G.T @ lam
        r_c = lam * s - mu
        if np.linalg.norm(r_d) < tol and np.max(np.abs(r_c)) < tol * max(1.0, mu):
            break
        w = lam / s
        H = p.Q + (p.G.T * w) @ p.G
        step = np.linalg.solve(H, -r_d - p.G.T @ (r_c / s))
        ds = p.G @ step
        dlam = -(r_c + lam * ds) / s
        t = 1.0
        for v, dv in ((s, ds), (lam, dlam)):
            neg = dv < 0
            if np.any(neg):
                t = min(t, 0.995 * float(np.min(-v[neg] / dv[neg])))
        dq = dq + t * step
        lam = lam + t * dlam
        s = p.G @ dq + p.g0
    return dq, mu / s, it


def barrier_hessian(p: StepProblem, dq: np.ndarray, kappa: float) -> np.ndarray:
    s = p.G @ dq + p.g0
    return p.Q + (p.G.T * (1.0 / (kappa * s**2))) @ p.G


def barrier_gradients(p: StepProblem, dq: np.ndarray, kappa: float) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Implicit-function-theorem derivatives of the barrier step's ``q_next = q + dq``.

    At the optimum ``r = Q dq + b - (1/kappa) G^T (1/s) = 0`` with ``s = G dq + g0``; so
    ``d dq = -H^{-1} dr`` with ``H = Q + (1/kappa) G^T diag(1/s^2) G``. Returns
    ``A = d q_next / d q`` (5, 5) and ``B = d q_next / d u`` (5, 2).
    """
    s = p.G @ dq + p.g0
    H = p.Q + (p.G.T * (1.0 / (kappa * s**2))) @ p.G
    dr_dq = p.db_dq + (p.G.T * (1.0 / (kappa * s**2))) @ p.dg0_dq
    if p.dG_dq is not None:  # the Jacobians' own change with q (curvature of the contacts)
        lam = 1.0 / (kappa * s)
        for j in range(dr_dq.shape[1]):
            dG = p.dG_dq[j]
            dr_dq[:, j] += -dG.T @ lam + (p.G.T * (1.0 / (kappa * s**2))) @ (dG @ dq)
    A = np.eye(len(dq)) - np.linalg.solve(H, dr_dq)
    B = -np.linalg.solve(H, p.db_du)
    return A, B


def exact_gradient_u(p: StepProblem, dq: np.ndarray, impulses: np.ndarray,
                     active_tol: float = 1e-7) -> np.ndarray:
    """``d q_next / d u`` (5, 2) of the exact step, from its KKT system on the active set
    (rows with a positive impulse held as equalities). Defined almost everywhere."""
    n = len(dq)
    scale = max(1.0, float(np.max(np.abs(impulses), initial=0.0)))
    active = impulses > active_tol * scale
    Ga = p.G[active]
    if Ga.shape[0] == 0:
        return -np.linalg.solve(p.Q, p.db_du)
    # Null space of the active rows: motion that keeps them at zero.
    _, sv, Vt = np.linalg.svd(Ga)
    rank = int(np.sum(sv > 1e-9 * sv[0]))
    Z = Vt[rank:].T
    if Z.shape[1] == 0:
        return np.zeros((n, p.db_du.shape[1]))
    return -Z @ np.linalg.solve(Z.T @ p.Q @ Z, Z.T @ p.db_du)


class QuasiDynamicModel:
    """The CQDC model of the flip-up scene, built on the env's plant.

    ``step(q, u)`` (exact), ``step_barrier(q, u, kappa)`` and ``linearize(q, u, kappa)`` take
    ``q`` (5,) in the observation layout [m, rad] and ``u`` (2,) the finger target [m].
    """

    def __init__(self, scenario: Scenario, h: float, params: EpisodeParams | None = None,
                 max_rotation: float = 0.15, support_friction: float | None = None):
        self.scenario = scenario
        self.h = float(h)
        self.max_rotation = float(max_rotation)  # [rad] per step
        self._rotation_rows = np.zeros((2, NQ))
        self._rotation_rows[:, BOX_Q.start + 2] = [1.0, -1.0]
        self.params = params or nominal_params(scenario)
        self.scaling = ActionScaling.from_scenario(scenario)
        builder = DiagramBuilder()
        handles = add_world(builder, scenario, self.params)
        task, self.robot = scenario.plugins()
        rows = task.observation_layout.indices(["box_q", "robot_q"])
        self.plant, self.scene_graph = handles.plant, handles.scene_graph
        self.diagram = builder.Build()
        self.context = self.diagram.CreateDefaultContext()
        self.plant_context = self.plant.GetMyMutableContextFromRoot(self.context)
        self.sg_context = self.scene_graph.GetMyContextFromRoot(self.context)
        nq = self.plant.num_positions()
        # P (5, nq): plant positions -> layout positions; the planar and prismatic joints have
        # qdot = v, so the same matrix maps velocities and Jacobian columns.
        self.P = handles.state_selector[rows, :nq]
        self.inspector = self.scene_graph.model_inspector()
        self.mu = self.params.friction
        # Optional friction of the box on the bin for planning: the dual-cone model lifts a
        # sliding box by mu times its slide per step (Anitescu's relaxation), which a lower
        # support friction keeps small. None: the scenario's friction everywhere.
        self.support_friction = support_friction
        # Box inertia from the plant (mass matrix of the planar joint, constant).
        M = self.P @ self.plant.CalcMassMatrix(self.plant_context) @ self.P.T
        self.M_u = M[BOX_Q, BOX_Q]
        self.box_mass = float(self.M_u[0, 0])
        # Finger stiffness: the controller's kp times the finger's own mass matrix (the
        # InverseDynamicsController commands kp * error as an acceleration).
        finger = self._finger_mass()
        self.K_a = self.params.kp * finger
        self.Q = np.zeros((NQ, NQ))
        self.Q[BOX_Q, BOX_Q] = self.M_u / self.h
        self.Q[FINGER_Q, FINGER_Q] = self.h * self.K_a
        self.tau_u = np.array([0.0, -self.box_mass * GRAVITY, 0.0])

    def _finger_mass(self) -> np.ndarray:
        from pydrake.multibody.parsing import Parser
        from pydrake.multibody.plant import MultibodyPlant

        model = MultibodyPlant(time_step=0.0)
        Parser(model).AddModels(str(self.robot.model_file))
        model.Finalize()
        return np.asarray(model.CalcMassMatrix(model.CreateDefaultContext()))

    # ------------------------------------------------------------------ kinematics
    def set_q(self, q: np.ndarray) -> None:
        self.plant.SetPositions(self.plant_context, self.P.T @ np.asarray(q, dtype=float))

    def contacts(self, q: np.ndarray, max_distance: float = CONTACT_RANGE) -> Contacts:
        """Signed distances and in-plane contact Jacobians of every pair within range."""
        self.set_q(q)
        query = self.scene_graph.get_query_output_port().Eval(self.sg_context)
        pairs = query.ComputeSignedDistancePairwiseClosestPoints(max_distance)
        world = self.plant.world_frame()
        phi, Jn, Jt, names = [], [], [], []
        for pair in pairs:
            n = np.asarray(pair.nhat_BA_W)
            t = np.array([n[2], 0.0, -n[0]])  # in-plane tangent (world y is out of plane)
            J = np.zeros((3, NQ))
            for gid, p_G, sign in ((pair.id_A, pair.p_ACa, 1.0), (pair.id_B, pair.p_BCb, -1.0)):
                body = self.plant.GetBodyFromFrameId(self.inspector.GetFrameId(gid))
                if body.index() == self.plant.world_body().index():
                    continue
                p_body = self.inspector.GetPoseInFrame(gid) @ p_G
                Jv = self.plant.CalcJacobianTranslationalVelocity(
                    self.plant_context, JacobianWrtVariable.kV, body.body_frame(), p_body,
                    world, world)
                J += sign * Jv @ self.P.T
            phi.append(pair.distance)
            Jn.append(n @ J)
            Jt.append(t @ J)
            names.append(f"{self.inspector.GetName(pair.id_A)}|{self.inspector.GetName(pair.id_B)}")
        m = len(phi)
        return Contacts(np.asarray(phi), np.reshape(Jn, (m, NQ)), np.reshape(Jt, (m, NQ)),
                        np.array([self._friction(n) for n in names]), names)

    def _friction(self, pair: str) -> float:
        if self.support_friction is not None and "bin_" in pair:
            return self.support_friction
        return self.mu

    @staticmethod
    def _rows(c: Contacts) -> np.ndarray:
        return np.concatenate([c.Jn + c.mu[:, None] * c.Jt, c.Jn - c.mu[:, None] * c.Jt])

    def _dG_dq(self, q: np.ndarray, c: Contacts, eps: float = 1e-6) -> np.ndarray:
        """d G / d q by central differences of the kinematics, pair by pair (a pair missing
        on one side keeps a zero derivative)."""
        out = np.zeros((NQ, 2 * len(c.phi), NQ))
        index = {name: i for i, name in enumerate(c.names)}
        for j in range(NQ):
            rows = []
            for sign in (1.0, -1.0):
                dq = np.zeros(NQ)
                dq[j] = sign * eps
                cj = self.contacts(q + dq, CONTACT_RANGE + 0.01)
                G = np.zeros((2 * len(c.phi), NQ))
                Gj = self._rows(cj)
                for k, name in enumerate(cj.names):
                    if name in index:
                        i = index[name]
                        G[i], G[i + len(c.phi)] = Gj[k], Gj[k + len(cj.phi)]
                rows.append(G)
            out[j] = (rows[0] - rows[1]) / (2 * eps)
        self.set_q(q)
        return out

    def problem(self, q: np.ndarray, u: np.ndarray, curvature: bool = False) -> StepProblem:
        """The step's program at ``(q, u)``; ``curvature`` also differentiates the contact
        Jacobians (10 more kinematics queries) for exact ``A = d q_next / d q``."""
        q = np.asarray(q, dtype=float)
        u = np.asarray(u, dtype=float)
        c = self.contacts(q)
        h = self.h
        b = -h * np.r_[self.tau_u, self.K_a @ (u - q[FINGER_Q])]
        # Contact rows, then two rows |d theta| <= max_rotation: the contact geometry is
        # linearized, so a large rotation in one step would sink the far corners.
        G = np.concatenate([self._rows(c), self._rotation_rows])
        # Penetration (a measured state of the compliant sim, or a linearization error) is
        # read as touching: with mu >= 1 a corner in both the floor and a wall has no
        # feasible step at all (its two dual cones meet in a ray), and the barrier needs
        # dq = 0 strictly inside.
        gap = np.maximum(c.phi, MIN_GAP)
        g0 = np.r_[gap, gap, self.max_rotation, self.max_rotation]
        db_du = np.zeros((NQ, 2))
        db_du[FINGER_Q] = -h * self.K_a
        db_dq = np.zeros((NQ, NQ))
        db_dq[FINGER_Q, FINGER_Q] = h * self.K_a
        Jn = c.Jn * (c.phi > MIN_GAP)[:, None]  # a clamped gap does not change with q
        dg0_dq = np.concatenate([Jn, Jn, np.zeros((2, NQ))])
        dG = None
        if curvature:
            dG = np.concatenate([self._dG_dq(q, c), np.zeros((NQ, 2, NQ))], axis=1)
        return StepProblem(self.Q, b, G, g0, dg0_dq, db_du, db_dq, c, dG)

    # ------------------------------------------------------------------ dynamics
    def step(self, q: np.ndarray, u: np.ndarray) -> StepResult:
        """The exact quasi-dynamic step (Clarabel)."""
        p = self.problem(q, u)
        dq, lam = solve_exact(p)
        return StepResult(dq, lam, np.asarray(q, dtype=float) + dq)

    def step_barrier(self, q: np.ndarray, u: np.ndarray, kappa: float) -> StepResult:
        """The log-barrier (force-at-a-distance) step (Newton)."""
        p = self.problem(q, u)
        dq, lam, it = solve_barrier(p, kappa)
        return StepResult(dq, lam, np.asarray(q, dtype=float) + dq, it)

    def linearize(self, q: np.ndarray, u: np.ndarray, kappa: float, *,
                  curvature: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Barrier step and its IFT Jacobians: ``q_next`` (5,), ``A`` (5, 5), ``B`` (5, 2).
        ``B`` is exact; ``A`` neglects the Jacobians' change with ``q`` unless ``curvature``."""
        p = self.problem(q, u, curvature)
        dq, _, _ = solve_barrier(p, kappa)
        A, B = barrier_gradients(p, dq, kappa)
        return np.asarray(q, dtype=float) + dq, A, B

    def exact_linearize_u(self, q: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact step and its (almost-everywhere) ``d q_next / d u`` (5, 2)."""
        p = self.problem(q, u)
        dq, lam = solve_exact(p)
        return np.asarray(q, dtype=float) + dq, exact_gradient_u(p, dq, lam)

    # ------------------------------------------------------------------ states
    def project(self, q: np.ndarray, margin: float = 1e-3, rounds: int = 3) -> np.ndarray:
        """The nearest configuration (in the metric ``Q``) whose bodies are at least
        ``margin`` [m] apart: a measured state of the compliant sim penetrates, and with
        mu >= 1 a corner touching both the floor and a wall locks the rigid model (its two
        dual cones meet in a ray). A few linearized QPs (Clarabel)."""
        q = np.asarray(q, dtype=float).copy()
        for _ in range(rounds):
            c = self.contacts(q)
            close = c.phi < margin
            if not np.any(close):
                break
            # Soft constraints (slack penalized): a corner sunk into both the floor and the
            # foot of a wall gets contradictory normals (each box's nearest face).
            k = int(close.sum())
            prog = MathematicalProgram()
            dq = prog.NewContinuousVariables(NQ, "dq")
            slack = prog.NewContinuousVariables(k, "slack")
            prog.AddQuadraticCost(self.Q, np.zeros(NQ), dq, is_convex=True)
            prog.AddQuadraticCost(1e4 * np.trace(self.Q) * np.eye(k), np.zeros(k), slack,
                                  is_convex=True)
            prog.AddLinearConstraint(np.hstack([c.Jn[close], np.eye(k)]), margin - c.phi[close],
                                     np.full(k, np.inf), np.r_[dq, slack])
            prog.AddBoundingBoxConstraint(0.0, np.inf, slack)
            result = ClarabelSolver().Solve(prog)
            if not result.is_success():
                break
            q = q + np.asarray(result.GetSolution(dq))
        return q

    def flat_q(self, box_x: float, box_theta: float = 0.0,
               finger: np.ndarray | None = None) -> np.ndarray:
        """A box lying flat on the floor at ``box_x`` (its corners touching), finger at
        ``finger`` (default: the scenario's home)."""
        f = self.robot.home() if finger is None else finger
        z = self.scenario.bin.floor_z + 0.5 * self.params.task["box_thickness"]
        return np.array([box_x, z, box_theta, f[0], f[1]], dtype=float)
