"""The physical world: the task's scene and the robot in one Drake MultibodyPlant, plus the
robot's position controller.

Shared by the simulated station (:mod:`fingergym.sim.station`), the virtual robot
(:mod:`fingergym.hardware.virtual_robot`), replay and the gradient study, so all of them run the
same physics from the same scenario. Names no task and no robot: the scenario's plug-ins add
themselves (:meth:`fingergym.interfaces.Task.add_to_plant`, :meth:`~fingergym.interfaces.
Robot.add_to_plant`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydrake.geometry import (
    AddCompliantHydroelasticProperties,
    AddContactMaterial,
    AddRigidHydroelasticProperties,
    ProximityProperties,
    SceneGraph,
)
from pydrake.multibody.plant import (
    AddMultibodyPlant,
    CoulombFriction,
    MultibodyPlant,
    MultibodyPlantConfig,
)
from pydrake.multibody.tree import ModelInstanceIndex
from pydrake.systems.framework import DiagramBuilder, InputPort

from fingergym.interfaces import ObservationSpec
from fingergym.scenario import Scenario
from fingergym.sim.params import EpisodeParams


@dataclass
class PlantHandles:
    """What the station builders need from the plant."""

    plant: MultibodyPlant
    scene_graph: SceneGraph
    robot: ModelInstanceIndex
    state_selector: np.ndarray  # (n_obs, nx): plant state -> the task's observation layout


def contact_properties(scenario: Scenario,
                       friction: float) -> Callable[[bool], ProximityProperties]:
    """``contact(compliant)``: fresh proximity properties with the episode's friction (and
    hydroelastic properties, compliant or rigid, for the hydroelastic models)."""
    c = scenario.contact

    def contact(compliant: bool) -> ProximityProperties:
        props = ProximityProperties()
        AddContactMaterial(dissipation=c.dissipation, point_stiffness=c.stiffness,
                           friction=CoulombFriction(friction, friction), properties=props)
        if c.model != "point":
            if compliant:
                AddCompliantHydroelasticProperties(c.resolution_hint, c.hydroelastic_modulus,
                                                   props)
            else:
                AddRigidHydroelasticProperties(c.resolution_hint, props)
        return props

    return contact


def state_selector(plant: MultibodyPlant, spec: ObservationSpec,
                   tracked: dict[str, str]) -> np.ndarray:
    """(n_obs, nx) 0/1 matrix: the plant state (q, v) in the observation layout, by name."""
    nq = plant.num_positions()
    cols = []
    for name, src in spec.sources.items():
        if src.kind.startswith("joint"):
            joint = plant.GetJointByName(src.name)
            offset = 0
        else:
            if src.name not in tracked:
                raise ValueError(f"observation {name!r}: object {src.name!r} is not a tracked "
                                 f"object (tracked: {sorted(tracked)})")
            joint = plant.GetJointByName(tracked[src.name])
            offset = src.axis
        if src.is_position:
            cols.append(joint.position_start() + offset)
        else:
            cols.append(nq + joint.velocity_start() + offset)
    P = np.zeros((len(cols), plant.num_multibody_states()))
    P[np.arange(len(cols)), cols] = 1.0
    return P


def add_world(builder: DiagramBuilder, scenario: Scenario, params: EpisodeParams) -> PlantHandles:
    """Add the task's scene, then the robot, to ``builder``; the plant is finalized on return."""
    config = MultibodyPlantConfig(
        time_step=scenario.plant.time_step,
        contact_model=scenario.contact.model,
        discrete_contact_approximation=scenario.contact.approximation,
    )
    plant, scene_graph = AddMultibodyPlant(config, builder)
    plant.set_name("plant")
    task, robot = scenario.plugins()
    contact = contact_properties(scenario, params.friction)
    task.add_to_plant(plant, params.task, contact)
    instance = robot.add_to_plant(plant, scene_graph, contact)
    plant.Finalize()
    task.finalize_plant(plant, scene_graph, instance)
    selector = state_selector(plant, task.observation(), dict(task.tracked_objects))
    return PlantHandles(plant, scene_graph, instance, selector)


def add_controller(builder: DiagramBuilder, scenario: Scenario, params: EpisodeParams,
                   handles: PlantHandles) -> InputPort:
    """The robot's position controller; returns its command input (n_cmd,)."""
    _, robot = scenario.plugins()
    return robot.add_controller(builder, handles.plant, handles.robot, params)


def command_positions(plant: MultibodyPlant, plant_context: Any, scenario: Scenario) -> np.ndarray:
    """The robot's command joints' positions now (n_cmd,) [m or rad]."""
    _, robot = scenario.plugins()
    return np.array([plant.GetJointByName(j).GetOnePosition(plant_context)
                     for j in robot.command_layout.names])
