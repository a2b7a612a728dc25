"""Show a logged episode in Meshcat: the plant's geometry posed from the logged states.

The station's plant (same scenario, the episode's box size) is posed frame by frame from the
logged (noise-free when available) state and published by Drake's MeshcatVisualizer, paced at
``speed`` x real time; the commanded target is drawn as a small green sphere. The frames are
also published as a Meshcat animation, so the episode can be scrubbed and replayed in the
browser afterwards.
"""

from __future__ import annotations

import gc
import time

import numpy as np
from pydrake.geometry import (
    Meshcat,
    MeshcatVisualizer,
    MeshcatVisualizerParams,
    Rgba,
    Role,
    Sphere,
    StartMeshcat,
)
from pydrake.math import RigidTransform
from pydrake.systems.framework import DiagramBuilder

from .reader import Episode
from .replay import episode_params_for

TARGET_PATH = "fingergym/target"


def show_episode(ep: Episode, *, speed: float = 1.0, meshcat: Meshcat | None = None,
                 states: np.ndarray | None = None) -> Meshcat:
    """Play ``ep`` (or ``states`` (N, n), e.g. a replay) in Meshcat; returns the Meshcat.
    A command of two elements is drawn as a point target in the (x, z) plane."""
    from fingergym.sim.plant import add_world
    from fingergym.sim.station import set_2d_view

    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    scenario = ep.scenario
    states = ep.true_state if states is None else states
    meshcat = meshcat or StartMeshcat()
    builder = DiagramBuilder()
    handles = add_world(builder, scenario, episode_params_for(ep, scenario))
    vis = MeshcatVisualizer.AddToBuilder(builder, handles.scene_graph, meshcat,
                                         MeshcatVisualizerParams(role=Role.kIllustration))
    set_2d_view(meshcat, scenario)
    point_target = ep.target.shape[1] == 2
    if point_target:
        meshcat.SetObject(TARGET_PATH, Sphere(0.006), Rgba(0.2, 0.8, 0.3, 0.8))
    diagram = builder.Build()
    context = diagram.CreateDefaultContext()
    plant = handles.plant
    plant_context = plant.GetMyMutableContextFromRoot(context)
    index = np.argmax(handles.state_selector, axis=1)  # layout -> plant state index
    x = np.array(plant.GetPositionsAndVelocities(plant_context))
    step = float(ep.metadata.get("step", scenario.episode.step))
    vis.StartRecording(False)
    animation = vis.get_mutable_recording()
    start = time.monotonic()
    for k, s in enumerate(states):
        t = k * step
        context.SetTime(t)
        x[index] = s
        plant.SetPositionsAndVelocities(plant_context, x)
        if point_target and k < ep.steps:
            X = RigidTransform([ep.target[k, 0], 0.0, ep.target[k, 1]])
            meshcat.SetTransform(TARGET_PATH, X)
            animation.SetTransform(animation.frame(t), TARGET_PATH, X)
        delay = start + t / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        diagram.ForcedPublish(context)
    vis.StopRecording()
    vis.PublishRecording()
    # Drake's Meshcat must be destroyed on the thread that made it; free the diagram's
    # reference cycles here so that no later garbage collection in another thread (e.g. a
    # recorder's writer) is left holding the last reference.
    del animation, vis, plant_context, context, diagram, handles, builder
    gc.collect()
    return meshcat
