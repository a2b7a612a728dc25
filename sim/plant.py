"""The physical world: bin, box and point finger in a Drake MultibodyPlant, plus its controller.

Shared by the simulated station (:mod:`fingergym.sim.station`) and the virtual robot
(:mod:`fingergym.hardware.virtual_robot`), so both run the same physics from the same scenario.

Geometry: the motion is planar in world x (right) and z (up). The box rides a PlanarJoint whose
frame maps its (x, y) onto world (x, z); at theta = 0 the box lies flat with its long side along
x, at theta = +-pi/2 it stands on its short edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydrake.geometry import (
    AddCompliantHydroelasticProperties,
    AddContactMaterial,
    AddRigidHydroelasticProperties,
    Box,
    CollisionFilterDeclaration,
    GeometrySet,
    ProximityProperties,
    SceneGraph,
    Sphere,
)
from pydrake.math import RigidTransform, RotationMatrix
from pydrake.multibody.plant import (
    AddMultibodyPlant,
    CoulombFriction,
    MultibodyPlant,
    MultibodyPlantConfig,
)
from pydrake.multibody.tree import (
    FixedOffsetFrame,
    ModelInstanceIndex,
    PlanarJoint,
    PrismaticJoint,
    SpatialInertia,
    UnitInertia,
)
from pydrake.systems.controllers import InverseDynamicsController
from pydrake.systems.framework import DiagramBuilder

from fingergym.scenario import Scenario
from fingergym.sim.params import EpisodeParams

BOX_COLOR = [0.45, 0.55, 0.9, 1.0]
FINGER_COLOR = [0.9, 0.45, 0.4, 1.0]
BIN_COLOR = [0.55, 0.55, 0.55, 0.6]
CORNER_RADIUS = 0.002  # [m] point-contact spheres in the box corners
FLOOR_THICKNESS = 0.05  # [m] the bin floor slab, below floor_z
_CONTACT_MODEL = {
    "point": "point",
    "hydroelastic": "hydroelastic",
    "hydroelastic_with_fallback": "hydroelastic_with_fallback",
}


@dataclass
class PlantHandles:
    """What the station builders need from the plant."""

    plant: MultibodyPlant
    scene_graph: SceneGraph
    box: ModelInstanceIndex
    finger: ModelInstanceIndex
    state_permutation: np.ndarray  # (10, 10): plant state -> observation layout


def _proximity(scenario: Scenario, friction: float, compliant: bool) -> ProximityProperties:
    c = scenario.contact
    props = ProximityProperties()
    AddContactMaterial(dissipation=c.dissipation, point_stiffness=c.stiffness,
                       friction=CoulombFriction(friction, friction), properties=props)
    if c.model != "point":
        if compliant:
            AddCompliantHydroelasticProperties(0.01, c.hydroelastic_modulus, props)
        else:
            AddRigidHydroelasticProperties(0.01, props)
    return props


def add_finger(plant: MultibodyPlant, scenario: Scenario,
               props: ProximityProperties | None = None) -> ModelInstanceIndex:
    """A sphere on two prismatic joints (world -x-> carriage -z-> finger), both actuated."""
    f = scenario.finger
    instance = plant.AddModelInstance("finger")
    carriage = plant.AddRigidBody("finger_carriage", instance, SpatialInertia.Zero())
    body = plant.AddRigidBody(
        "finger", instance,
        SpatialInertia(f.mass, np.zeros(3), UnitInertia.SolidSphere(f.radius)))
    jx = plant.AddJoint(PrismaticJoint("finger_x", plant.world_frame(), carriage.body_frame(),
                                       [1, 0, 0], *f.x_limits))
    jz = plant.AddJoint(PrismaticJoint("finger_z", carriage.body_frame(), body.body_frame(),
                                       [0, 0, 1], *f.z_limits))
    jx.set_default_translation(f.home[0])
    jz.set_default_translation(f.home[1])
    for j in (jx, jz):
        plant.AddJointActuator(j.name(), j)
    if props is not None:
        sphere = Sphere(f.radius)
        plant.RegisterCollisionGeometry(body, RigidTransform(), sphere, "finger", props)
        plant.RegisterVisualGeometry(body, RigidTransform(), sphere, "finger", FINGER_COLOR)
    return instance


def _add_bin(plant: MultibodyPlant, scenario: Scenario, props: ProximityProperties) -> None:
    b = scenario.bin
    world = plant.world_body()
    span = b.wall_x[1] - b.wall_x[0] + 2 * b.wall_thickness
    depth = scenario.box.depth + 0.04  # out of plane: just deeper than the box
    floor = Box(span, depth, FLOOR_THICKNESS)
    x_mid = 0.5 * (b.wall_x[0] + b.wall_x[1])
    X_floor = RigidTransform([x_mid, 0, b.floor_z - 0.5 * FLOOR_THICKNESS])
    plant.RegisterCollisionGeometry(world, X_floor, floor, "bin_floor", props)
    plant.RegisterVisualGeometry(world, X_floor, floor, "bin_floor", BIN_COLOR)
    wall = Box(b.wall_thickness, depth, b.wall_height)
    for name, x in (("bin_left", b.wall_x[0] - 0.5 * b.wall_thickness),
                    ("bin_right", b.wall_x[1] + 0.5 * b.wall_thickness)):
        X = RigidTransform([x, 0, b.floor_z + 0.5 * b.wall_height])
        plant.RegisterCollisionGeometry(world, X, wall, name, props)
        plant.RegisterVisualGeometry(world, X, wall, name, BIN_COLOR)


def _add_box(plant: MultibodyPlant, scenario: Scenario, params: EpisodeParams,
             props: ProximityProperties) -> ModelInstanceIndex:
    instance = plant.AddModelInstance("box")
    shape = Box(params.box_length, params.box_thickness, scenario.box.depth)
    body = plant.AddRigidBody(
        "box", instance,
        SpatialInertia(params.box_mass, np.zeros(3), UnitInertia.SolidBox(
            params.box_length, params.box_thickness, scenario.box.depth)))
    plane = plant.AddFrame(FixedOffsetFrame(
        "box_plane", plant.world_frame(), RigidTransform(RotationMatrix.MakeXRotation(np.pi / 2))))
    joint = plant.AddJoint(PlanarJoint("box_joint", plane, body.body_frame()))
    joint.set_default_translation([params.box_x,
                                   scenario.bin.floor_z + 0.5 * params.box_thickness])
    joint.set_default_rotation(params.box_theta)
    plant.RegisterCollisionGeometry(body, RigidTransform(), shape, "box", props)
    plant.RegisterVisualGeometry(body, RigidTransform(), shape, "box", BOX_COLOR)
    if scenario.contact.model == "point":
        # Drake's point contact reports one (deepest) point per box-box pair, so a flat box on
        # a flat floor rocks corner to corner every step. Touch the bin through small spheres
        # in the box's corners instead (the finger still touches the box shape itself).
        rho = CORNER_RADIUS
        hx, hy = 0.5 * params.box_length - rho, 0.5 * params.box_thickness - rho
        for i, (sx, sy) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1))):
            plant.RegisterCollisionGeometry(body, RigidTransform([sx * hx, sy * hy, 0]),
                                            Sphere(rho), f"box_corner_{i}", props)
    return instance


def _filter_collisions(plant: MultibodyPlant, scene_graph: SceneGraph) -> None:
    """Point contact: the box shape touches only the finger, the corner spheres only the bin."""
    inspector = scene_graph.model_inspector()
    box_ids = plant.GetCollisionGeometriesForBody(plant.GetBodyByName("box"))
    shape = [g for g in box_ids if inspector.GetName(g).endswith("box")]
    corners = [g for g in box_ids if "box_corner" in inspector.GetName(g)]
    if not corners:
        return
    bin_ids = plant.GetCollisionGeometriesForBody(plant.world_body())
    finger_ids = plant.GetCollisionGeometriesForBody(plant.GetBodyByName("finger"))
    scene_graph.collision_filter_manager().Apply(
        CollisionFilterDeclaration()
        .ExcludeBetween(GeometrySet(shape), GeometrySet(bin_ids))
        .ExcludeBetween(GeometrySet(corners), GeometrySet(finger_ids)))


def _state_permutation(plant: MultibodyPlant) -> np.ndarray:
    """Selects the plant's state into the observation layout of :mod:`fingergym.task`."""
    nq = plant.num_positions()
    box = plant.GetJointByName("box_joint")
    fx, fz = plant.GetJointByName("finger_x"), plant.GetJointByName("finger_z")
    q_idx = [box.position_start() + i for i in range(3)] + [fx.position_start(),
                                                            fz.position_start()]
    v_idx = [nq + box.velocity_start() + i for i in range(3)] + [
        nq + fx.velocity_start(), nq + fz.velocity_start()]
    P = np.zeros((10, plant.num_multibody_states()))
    P[np.arange(10), q_idx + v_idx] = 1.0
    return P


def add_box_flipup_plant(builder: DiagramBuilder, scenario: Scenario,
                         params: EpisodeParams) -> PlantHandles:
    """Add the bin, box and finger to ``builder``; the plant is finalized on return."""
    config = MultibodyPlantConfig(
        time_step=scenario.plant.time_step,
        contact_model=_CONTACT_MODEL[scenario.contact.model],
        discrete_contact_approximation=scenario.contact.approximation,
    )
    plant, scene_graph = AddMultibodyPlant(config, builder)
    plant.set_name("plant")
    _add_bin(plant, scenario, _proximity(scenario, params.friction, compliant=False))
    box = _add_box(plant, scenario, params, _proximity(scenario, params.friction, True))
    finger = add_finger(plant, scenario, _proximity(scenario, params.friction, True))
    plant.Finalize()
    _filter_collisions(plant, scene_graph)
    return PlantHandles(plant, scene_graph, box, finger, _state_permutation(plant))


def add_finger_controller(builder: DiagramBuilder, scenario: Scenario, params: EpisodeParams,
                          handles: PlantHandles) -> InverseDynamicsController:
    """Gravity-compensated PD (Drake's InverseDynamicsController) on a finger-only model.

    Input ``desired_state`` (4: x, z, vx, vz); its actuation output drives the plant.
    """
    model = MultibodyPlant(time_step=0.0)
    add_finger(model, scenario)
    model.Finalize()
    n = model.num_positions()
    controller = builder.AddSystem(InverseDynamicsController(
        model, [params.kp] * n, [scenario.controller.ki] * n, [params.kd] * n, False))
    controller.set_name("finger_controller")
    plant = handles.plant
    builder.Connect(plant.get_state_output_port(handles.finger),
                    controller.get_input_port_estimated_state())
    builder.Connect(controller.get_output_port_control(), plant.get_actuation_input_port())
    return controller
