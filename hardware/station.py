"""The hardware station: the sim station's ports with a ROS 2 robot behind them.

Exported ports (the names of :mod:`fingergym.sim.station`; n = the task's observation size,
m = the robot's command size):

- input ``actions`` (m): the agent's action in ``[-1, 1]^m`` (same saturation and affine map);
- output ``observations`` (n) and ``state`` (n): the newest robot state in the task's
  observation layout (object velocities estimated from poses), read once per sim time;
- output ``reward``: the task's reward (:class:`fingergym.sim.station.RewardSystem`), as in sim;
- output ``target`` (m): the policy's command; ``sent_target`` (m): what was last published
  after the safety layer; ``message_age`` (2): joint state and (oldest) object pose age [s].

Behind them, :class:`CommandSender` (a drake-ros-style publisher system) re-sends the latest
target at ``command.rate`` through :class:`~fingergym.hardware.safety.SafetyFilter`, paced to
the wall clock by :class:`~fingergym.hardware.pacing.Pacer`, and runs the watchdog; a Simulator
monitor stops the episode when the watchdog fires.

Timing (see :class:`CommandSender`): commands leave on a fixed wall-clock grid; at a gym step
boundary the observation is read ``command.observation_lead`` s before the next command, the
policy runs in that gap, and the command carrying the new action leaves on time.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import numpy as np
from pydrake.systems.analysis import Simulator
from pydrake.systems.framework import (
    BasicVector,
    Context,
    Diagram,
    DiagramBuilder,
    DiscreteValues,
    EventStatus,
    LeafSystem,
)

from fingergym.hardware.config import HardwareConfig
from fingergym.hardware.pacing import Pacer, sleep_until
from fingergym.hardware.ros_bridge import (
    ControlConflict,
    EStopEngaged,
    HardwareError,
    RosBridge,
    Snapshot,
    StateFault,
    domain_hint,
)
from fingergym.hardware.safety import SafetyFilter
from fingergym.scaling import ActionScaling, add_action_scaling
from fingergym.scenario import Scenario
from fingergym.sim.station import RewardSystem

DISCOVERY_SETTLE = 0.5  # [s] after the first matching, before the first commander check
ESTOP_LATCH_WAIT = 2.0  # [s] for a matched e-stop publisher's latched value, once
HOMING_GRACE = 0.25  # [s] invalid messages stamped this soon after an episode end are its own


class RosStateSource(LeafSystem):
    """Outputs the bridge's newest state; one :class:`Snapshot` per sim time (then cached)."""

    def __init__(self, bridge: RosBridge, n_obs: int):
        super().__init__()
        self.bridge = bridge
        self._snap: Snapshot | None = None
        self._snap_time = np.nan
        self._fresh: Snapshot | None = None
        deps = {self.time_ticket()}
        self.DeclareVectorOutputPort("observations", n_obs, self._calc_obs,
                                     prerequisites_of_calc=deps)
        self.DeclareVectorOutputPort("message_age", 2, self._calc_age,
                                     prerequisites_of_calc=deps)

    def snapshot(self, context: Context) -> Snapshot:
        t = context.get_time()
        if self._snap is None or self._snap_time != t:
            self._snap, self._snap_time = self.bridge.snapshot(), t
            self._fresh = self._snap
        return self._snap

    def take_fresh(self) -> Snapshot | None:
        """The snapshot read since the last call (the observation a command acts on), once."""
        fresh, self._fresh = self._fresh, None
        return fresh

    def invalidate(self) -> None:
        self._snap, self._snap_time, self._fresh = None, np.nan, None

    def _calc_obs(self, context: Context, output: BasicVector) -> None:
        output.SetFromVector(self.snapshot(context).obs)

    def _calc_age(self, context: Context, output: BasicVector) -> None:
        s = self.snapshot(context)
        output.SetFromVector([s.joint_age, s.pose_age])


@dataclass
class CommandTiming:
    """Per-command timing records (monotonic s), for the HIL benchmark."""

    sent: list[float] = field(default_factory=list)       # every command
    late: list[float] = field(default_factory=list)       # pacing lateness of every tick
    slack: list[float] = field(default_factory=list)      # time left before a deadline
    obs_to_cmd: list[float] = field(default_factory=list)  # observation read -> its command
    joint_to_cmd: list[float] = field(default_factory=list)  # arrival of the JointState an
    pose_to_cmd: list[float] = field(default_factory=list)   # observation used -> its command


class CommandSender(LeafSystem):
    """Publishes the held target at a fixed rate through the safety layer; runs the watchdog.

    Input ``target`` (m); output ``sent_target`` (m): the last command published.

    Per command period, at sim time ``t_k`` (wall deadline ``origin + t_k``): a publish event
    sleeps until ``lead`` s before the deadline and runs the watchdog (at a gym step boundary the
    env reads the observation right after it, and the policy runs); the discrete update at
    ``t_k`` sleeps until the deadline and publishes. So commands leave on a fixed grid, and a new
    action goes out ``lead`` s after the observation it was computed from, as long as the policy
    and the env take less than ``lead`` (else the command is late, and counted).
    """

    def __init__(self, bridge: RosBridge, safety: SafetyFilter, state: RosStateSource,
                 period: float, watchdog_age: float, lead: float):
        super().__init__()
        self.bridge, self.safety, self.state = bridge, safety, state
        self.period = period
        self.lead = min(lead, 0.9 * period)
        self.watchdog_age = watchdog_age
        self.pacer = Pacer(period)
        self.timing = CommandTiming()
        self.fault = ""
        self.estop = False
        self.commander_check_period = 0.5  # [s] between graph queries for other commanders
        self._next_commander_check = 0.0
        self.reasons: dict[str, int] = {}
        self._origin: float | None = None  # monotonic time of sim time 0 (armed)
        m = safety.scaling.dim
        self._target = self.DeclareVectorInputPort("target", m)
        self._sent = self.DeclareDiscreteState(m)
        # the observation read point: `lead` before each command (sim time = wall time - origin)
        self.DeclarePeriodicPublishEvent(period, period - self.lead, self._before)
        self.DeclarePeriodicDiscreteUpdateEvent(period, 0.0, self._send)
        self.DeclareStateOutputPort("sent_target", self._sent)

    def disarm(self) -> None:
        self._origin = None
        self.fault = ""
        self.pacer.start()

    def _before(self, context: Context) -> EventStatus:
        if self._origin is not None:
            sleep_until(self._origin + context.get_time())
        if not self.fault:
            self.fault = self.check()
        return EventStatus.Succeeded()

    def check(self) -> str:
        """Why the episode must stop now ('' if it need not): a supervisor's abort, invalid
        state, the e-stop, another commander, or the watchdog (no valid state message)."""
        b = self.bridge
        if b.abort:
            return b.abort
        if b.validity is not None and b.validity.fault:
            return b.validity.fault
        if b.estop.engaged:
            return f"estop: engaged on {b.topics.estop}"
        now = time.monotonic()
        if now >= self._next_commander_check:
            self._next_commander_check = now + self.commander_check_period
            others = b.other_commanders()
            if others:
                return f"control conflict: {', '.join(others)} also publish on {b.topics.commands}"
        snap = b.snapshot()
        for name, age in (("joint states", snap.joint_age), ("object pose", snap.pose_age)):
            if age > self.watchdog_age:
                rejected = b.validity.counts() if b.validity is not None else {}
                why = f"; rejected as invalid: {rejected}" if rejected else ""
                return (f"watchdog: no valid {name} for {age:.3f} s "
                        f"(limit {self.watchdog_age:.3f} s{why})")
        return ""

    def _send(self, context: Context, discrete: DiscreteValues) -> EventStatus:
        t = context.get_time()
        if self._origin is None:  # first command of the episode: start the wall clock
            now = time.monotonic()
            self._origin = now - t
            self.pacer.start(now)
            self.state.take_fresh()  # read at reset, before an arbitrary pause: not a latency
        else:
            deadline = self._origin + t
            self.timing.slack.append(deadline - time.monotonic())
            self.timing.late.append(self.pacer.wait_until(deadline))
        if not self.fault and self.bridge.estop.engaged:  # engaged since _before
            self.fault = f"estop: engaged on {self.bridge.topics.estop}"
        self.estop = self.bridge.estop.engaged
        self.safety.set_estop(self.estop)
        if self.fault:  # hold: keep sending the last command sent (no jump)
            target = self.safety.last.copy()
            reason = self.fault.split(":")[0]
        else:
            snap = self.bridge.snapshot()
            cmd = self.safety.filter(self._target.Eval(context), snap.command)
            target, reason = cmd.target, cmd.reason
        self.bridge.publish_command(target)
        sent_at = time.monotonic()
        if reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        used = self.state.take_fresh()  # the observation the policy just acted on, if any
        if used is not None:
            self.timing.joint_to_cmd.append(sent_at - used.joint_arrival)
            self.timing.pose_to_cmd.append(sent_at - used.pose_arrival)
            self.timing.obs_to_cmd.append(sent_at - used.taken)
        self.timing.sent.append(sent_at)
        discrete.get_mutable_vector(self._sent).SetFromVector(target)
        return EventStatus.Succeeded()


@dataclass
class HardwareStation:
    """A built hardware station: the diagram plus what the env needs at reset."""

    diagram: Diagram
    scenario: Scenario
    config: HardwareConfig
    scaling: ActionScaling
    bridge: RosBridge
    safety: SafetyFilter
    state_source: RosStateSource
    sender: CommandSender
    _matched: bool = False

    # ------------------------------------------------------------------ env hooks
    def hold_setpoint(self, root_context: Context, target: np.ndarray) -> None:
        """Start the episode holding ``target``; the first command ramps from there."""
        ctx = self.sender.GetMyMutableContextFromRoot(root_context)
        self.safety.reset(target)
        ctx.SetDiscreteState(self.safety.last.copy())  # what was last sent: no jump at start
        self.safety.estop = self.sender.estop = self.bridge.estop.engaged
        self.sender.disarm()
        self.state_source.invalidate()

    def measured_command(self, root_context: Context) -> np.ndarray:
        """The command joints' measured positions (m,)."""
        return self.bridge.snapshot().command

    def end_reason(self) -> str:
        """Non-empty when the station stopped the episode (the env reports a truncation)."""
        return self.sender.fault

    def extra_info(self, root_context: Context) -> dict:
        snap = self.state_source.snapshot(
            self.state_source.GetMyContextFromRoot(root_context))
        ctx = self.sender.GetMyContextFromRoot(root_context)
        return {"sent_target": np.array(ctx.get_discrete_state_vector().value()),
                "joint_state_age": snap.joint_age, "object_pose_age": snap.pose_age,
                "object_pose_latency": snap.pose_latency, "estop": bool(snap.estop),
                "overruns": self.sender.pacer.overruns,
                "rejected": (self.bridge.validity.counts() if self.bridge.validity is not None
                             else {}),
                "rejected_first": (dict(self.bridge.validity.first)
                                   if self.bridge.validity is not None else {})}

    def monitor(self, root_context: Context) -> EventStatus:
        if self.sender.fault:
            return EventStatus.ReachedTermination(self.diagram, self.sender.fault)
        return EventStatus.Succeeded()

    def close(self) -> None:
        self.bridge.close()

    # ------------------------------------------------------------------ homing
    def wait_for_robot(self) -> None:
        """Wait for DDS matching (once) and a fresh joint state and box pose."""
        if not self._matched:
            self.bridge.wait_for_matching(self.config.ros.discovery_timeout)
            # Let discovery finish beyond the endpoints we waited for, so the first check for
            # other commanders (below) sees a deploy or a rogue node already on the domain.
            time.sleep(DISCOVERY_SETTLE)
            self.bridge.wait_for_estop(self.config.ros.estop_timeout, ESTOP_LATCH_WAIT)
            self._matched = True
        deadline = time.monotonic() + self.config.home.timeout
        while True:
            self.refuse_if_unsafe()
            snap = self.bridge.snapshot()
            age = self.config.safety.watchdog_age
            if snap.joint_age < age and snap.pose_age < age:
                return
            if time.monotonic() > deadline:
                raise HardwareError(self._no_fresh_state(snap, age))
            time.sleep(0.01)

    def _no_fresh_state(self, snap: Snapshot, age: float) -> str:
        t = self.bridge.topics
        missing = [n for n, a in ((t.joint_states, snap.joint_age),
                                  (", ".join(t.objects.values()), snap.pose_age))
                   if not a < age]
        why = [f"set_home: no fresh valid messages on {', '.join(missing)} within "
               f"{self.config.home.timeout:.1f} s"]
        foreign = self.bridge.counts.get("bad_joint_states", 0)
        if foreign and not snap.joint_age < age:
            _, robot = self.scenario.plugins()
            why.append(f"{foreign} JointState message(s) arrived naming "
                       f"{self.bridge.last_foreign_joint_names}, not the robot's joints "
                       f"{list(robot.joint_names)}")
        rejected = self.bridge.validity.counts() if self.bridge.validity is not None else {}
        if rejected:
            why.append(f"messages rejected as invalid: {rejected}")
        if len(why) == 1:
            why.append("is the robot (or `fingergym-virtual-robot`) running?")
        return "; ".join(why) + f" ({domain_hint(self.bridge.domain_id)})"

    def refuse_if_unsafe(self) -> None:
        """Raise if the robot may not be moved now: a supervisor's abort, the e-stop, invalid
        state, or another commander on the command topic."""
        b = self.bridge
        b.check_abort()
        if b.estop.engaged:
            raise EStopEngaged(f"set_home: the e-stop is engaged ({b.topics.estop}); refusing "
                               f"to move the robot. Release it by publishing `false` on that "
                               f"topic")
        if b.validity is not None and b.validity.fault:
            raise StateFault(f"set_home: {b.validity.fault}; refusing to move the robot")
        others = b.other_commanders()
        if others:
            raise ControlConflict(f"set_home: {', '.join(others)} also publish on "
                                  f"{b.topics.commands}; refusing to command the robot "
                                  f"alongside another commander")

    def go_home(self) -> np.ndarray:
        """Command the robot home (:meth:`~fingergym.interfaces.Robot.home`) and wait until it
        is within tolerance. Raises :class:`HardwareError` after ``home.timeout`` (no robot,
        e-stop, blocked). Returns the measured command joints' positions.
        """
        if self.bridge.validity is not None:
            # counts, faults per episode; an invalid message stamped within HOMING_GRACE of
            # the end of the last episode still belongs to it (a burst straddling the end,
            # in flight when it ended). It is rejected all the same: it never reaches the
            # robot, and an invalid state that persists past the grace refuses homing.
            self.bridge.validity.new_episode(since=time.time() + HOMING_GRACE)
        self.wait_for_robot()
        _, robot = self.scenario.plugins()
        home = np.asarray(robot.home(), dtype=float)
        h = self.config.home
        snap = self.bridge.snapshot()
        self.safety.reset(snap.command)
        self.safety.set_estop(False)
        pacer = Pacer(self.config.command_period)
        deadline = time.monotonic() + h.timeout
        checks = 0
        while True:
            pacer.wait()
            if checks % 50 == 0:
                self.refuse_if_unsafe()  # graph queries: twice a second
            elif self.bridge.estop.engaged or self.bridge.abort or (
                    self.bridge.validity is not None and self.bridge.validity.fault):
                self.refuse_if_unsafe()
            checks += 1
            snap = self.bridge.snapshot()
            self.bridge.publish_command(self.safety.filter(home, snap.command).target)
            err = float(np.linalg.norm(snap.command - home))
            fresh = snap.joint_age < self.config.safety.watchdog_age
            if (fresh and err < h.tolerance
                    and float(np.linalg.norm(snap.command_velocity)) < 0.05):
                return snap.command
            if time.monotonic() > deadline:
                why = ("the e-stop is engaged" if snap.estop else
                       f"last joint state {snap.joint_age:.2f} s ago" if not fresh else
                       f"at {np.round(snap.command, 4).tolist()}, "
                       f"{err * 1000:.1f} mm away")
                raise HardwareError(f"set_home: the robot did not reach home "
                                    f"{home.tolist()} within {h.tolerance * 1000:.1f} mm in "
                                    f"{h.timeout:.1f} s ({why})")

    def settle(self) -> None:
        """Let in-flight object poses land, then restart the velocity estimates from fresh ones.

        Poses published before a scene reset can arrive after it (tracker latency); waiting
        ``home.settle`` s first keeps them out of the new episode (theta unwrapping included).
        """
        time.sleep(self.config.home.settle)
        self.bridge.reset_pose_estimators()
        limit = time.monotonic() + self.config.home.timeout
        while self.bridge.pose_count < 3:
            self.bridge.check_abort()
            if time.monotonic() > limit:
                raise HardwareError(f"set_home: fewer than 3 poses on "
                                    f"{', '.join(self.bridge.topics.objects.values())} in "
                                    f"{self.config.home.timeout:.1f} s "
                                    f"({domain_hint(self.bridge.domain_id)})")
            time.sleep(0.002)

    def set_home(self, simulator: Simulator, context: Context, seed: int | None = None) -> None:
        """The env's reset handler: home the robot (no randomized reset on hardware)."""
        self.go_home()
        self.settle()
        # A full garbage collection stalls the process for tens of ms: do it now, and freeze
        # what survives so collections during the episode stay small (unfrozen first, so what
        # the last episode left behind is still collected).
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.sender.disarm()
        self.state_source.invalidate()


def build_hardware_station(scenario: Scenario, config: HardwareConfig,
                           bridge: RosBridge) -> HardwareStation:
    """The hardware station Diagram around a running :class:`RosBridge`."""
    task, robot = scenario.plugins()
    n_obs = task.observation_layout.size
    builder = DiagramBuilder()
    scaling = ActionScaling.from_scenario(scenario)
    safety = SafetyFilter(scaling, robot.max_step(config.command_period), robot.max_lead())

    # actions [-1, 1]^m -> saturate -> affine map onto the workspace: as in the sim station.
    actions, target = add_action_scaling(builder, scaling)
    builder.ExportInput(actions, "actions")

    source = builder.AddSystem(RosStateSource(bridge, n_obs))
    source.set_name("ros_state_source")
    sender = builder.AddSystem(CommandSender(bridge, safety, source, config.command_period,
                                             config.safety.watchdog_age,
                                             config.command.observation_lead))
    sender.set_name("ros_command_sender")
    builder.Connect(target, sender.get_input_port())

    reward = builder.AddSystem(RewardSystem(task, n_obs, scaling.dim))
    builder.Connect(source.GetOutputPort("observations"), reward.GetInputPort("state"))
    builder.Connect(target, reward.GetInputPort("target"))
    builder.ExportOutput(source.GetOutputPort("observations"), "observations")
    builder.ExportOutput(reward.GetOutputPort("reward"), "reward")
    builder.ExportOutput(source.GetOutputPort("observations"), "state")
    builder.ExportOutput(target, "target")
    builder.ExportOutput(sender.GetOutputPort("sent_target"), "sent_target")
    builder.ExportOutput(source.GetOutputPort("message_age"), "message_age")
    diagram = builder.Build()
    diagram.set_name(f"{scenario.task}_hardware_station")
    return HardwareStation(diagram, scenario, config, scaling, bridge, safety, source, sender)
