"""The CWMP session state machine: every rule about what a session may do next lives here.

A session (TR-069 Amendment 6, 3.7.1) starts with the CPE's Inform, which the server answers
with InformResponse after :func:`open`. In :attr:`Phase.CPE_REQUESTS` the CPE sends its own
requests (TransferComplete, AutonomousTransferComplete, GetRPCMethods, RequestDownload), then
an empty POST; from there the ACS sends its planned RPCs one by one (:attr:`Phase.ACS_RPC`),
each answer read into effects and the rest of the plan, until nothing is left: the empty
answer (HTTP 204) ends the session (:attr:`Phase.CLOSED`).

The plan (:func:`plan`) is the device's due tasks in id order, then the presets' round
(acs/plan.py), made once from a :class:`~acs.model.DeviceView`; answers may add steps (a
refresh's values after its names, AddObjects after the instances are known). A CPE fault
ends only the task or preset RPC it answers; an answer the session cannot make sense of ends
the session with a fault recorded. Nothing here raises on what a CPE sends.

Pure: no I/O; time comes in as ``now``. A session is small JSON (:meth:`Session.to_json`), so
any acs instance continues it from acs_live_sessions.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from acs import plan as presets_plan
from acs import tasks
from acs.messages import (
    ACS_METHODS,
    AcsFault,
    AutonomousTransferComplete,
    AutonomousTransferCompleteResponse,
    CpeFault,
    GetRPCMethods,
    GetRPCMethodsResponse,
    Inform,
    Message,
    RequestDownload,
    RequestDownloadResponse,
    TransferComplete,
    TransferCompleteResponse,
)
from acs.model import (
    DeviceView,
    Effect,
    FaultRecorded,
    ParametersForgotten,
    ParametersKnown,
    Preset,
    PresetsApplied,
    TaskFaulted,
    TransferEnded,
)
from acs.tasks import Step

MAX_RPCS = 64
"""The most RPCs the ACS sends in one session; a plan that needs more ends with a fault (the
next session goes on)."""
PLAN_EVENTS = ("0 BOOTSTRAP", "1 BOOT")
"""Events that call for the presets' plan whatever the device's state."""


class Phase(enum.Enum):
    CPE_REQUESTS = "cpe_requests"
    """After InformResponse: the CPE may send its requests, or the empty POST."""
    ACS_RPC = "acs_rpc"
    """One of the ACS's requests is out: its response (or a CpeFault) comes next."""
    CLOSED = "closed"
    """The ACS answered with the empty body: the session is over."""


@dataclass(slots=True)
class Session:
    """One session's state, and its access log line (``rpcs``, ``faults``)."""

    id: str
    device_id: int
    cwmp_id: str
    namespace: str
    started_at: float
    events: tuple[str, ...]
    phase: Phase = Phase.CPE_REQUESTS
    rpcs: list[str] = field(default_factory=list)  # methods in order: "Inform", "GetParameterValues", ...
    faults: list[str] = field(default_factory=list)  # "9005 Invalid parameter name (SetParameterValues)"
    step: int = 1  # messages so far, the Inform's included: a stale copy has a lower one
    queue: list[Step] = field(default_factory=list)  # the plan's steps still to send
    current: Step | None = None  # the step whose answer is awaited (ACS_RPC)
    sent: int = 0
    presets_key: str = ""
    presets_owed: bool = False  # the plan has steps of the presets: PresetsApplied when they end well
    presets_faulted: bool = False
    changed: bool = False  # a SetParameterValues or AddObject of the presets went through
    downloaded: bool = False  # a Download of the presets went out
    due_at: float | None = None
    service_id: int | None = None  # the device's service when the plan was made (PresetsApplied says it)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "device_id": self.device_id, "cwmp_id": self.cwmp_id, "namespace": self.namespace,
            "started_at": self.started_at, "events": list(self.events), "phase": self.phase.value,
            "rpcs": self.rpcs, "faults": self.faults, "step": self.step,
            "queue": [s.to_json() for s in self.queue],
            "current": None if self.current is None else self.current.to_json(), "sent": self.sent,
            "presets_key": self.presets_key, "presets_owed": self.presets_owed,
            "presets_faulted": self.presets_faulted, "changed": self.changed, "downloaded": self.downloaded,
            "due_at": self.due_at, "service_id": self.service_id,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Session:
        return cls(
            d["id"], d["device_id"], d["cwmp_id"], d["namespace"], d["started_at"], tuple(d["events"]),
            Phase(d["phase"]), list(d["rpcs"]), list(d["faults"]), d["step"],
            [Step.from_json(s) for s in d["queue"]], None if d["current"] is None else Step.from_json(d["current"]),
            d["sent"], d["presets_key"], d["presets_owed"], d["presets_faulted"], d["changed"], d["downloaded"],
            d["due_at"], d.get("service_id"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one message: ``reply`` None ends the session (HTTP 204)."""

    reply: Message | None
    effects: tuple[Effect, ...] = ()


def open(inform: Inform, *, session_id: str, device_id: int, cwmp_id: str, namespace: str,
         now: float) -> tuple[Session, list[Effect]]:
    """The session an Inform opens (no plan yet), and what its events change: 0 BOOTSTRAP
    forgets the tree, M Reboot ends the Reboot of its CommandKey, 4 VALUE CHANGE makes the
    Inform's values known."""
    events = tuple(e.code for e in inform.events)
    session = Session(session_id, device_id, cwmp_id, namespace, now, events, rpcs=["Inform"])
    effects: list[Effect] = []
    if "0 BOOTSTRAP" in events:
        effects.append(ParametersForgotten(""))
    effects += [TransferEnded(e.command_key) for e in inform.events if e.code == "M Reboot"]
    if "4 VALUE CHANGE" in events and inform.parameters:
        effects.append(ParametersKnown(tuple(tasks.read(inform.parameters, now))))
    return session, effects


def needs_plan(events: tuple[str, ...], presets: Sequence[Preset]) -> bool:
    """Whether these events alone call for planning: 0 BOOTSTRAP, 1 BOOT, or an enabled preset
    that matches on one of them (the server skips the device's state only when this is False)."""
    if any(e in PLAN_EVENTS for e in events):
        return True
    for p in presets:
        want = p.match.get("events") if p.enabled and isinstance(p.match, dict) else None
        if isinstance(want, list) and any(e in want for e in events):
            return True
    return False


def plan(session: Session, view: DeviceView, presets: Sequence[Preset]) -> list[Effect]:
    """Fill the plan of ``session`` from the due tasks of ``view`` (in id order) and the
    presets; the effects known at once (a task that cannot be sent, a preset action that cannot
    be applied, PresetsApplied when the presets have nothing to do)."""
    if "0 BOOTSTRAP" in session.events:
        view = replace(view, tree={})  # forgotten (open's effect), whenever the store read it
    effects: list[Effect] = []
    for task in sorted(view.tasks, key=lambda t: t.id):
        step = tasks.task_step(task, view)
        if isinstance(step, TaskFaulted):
            effects.append(step)
        else:
            session.queue.append(step)
    round_ = presets_plan.preset_round(view, presets)
    session.queue += round_.steps
    session.presets_key, session.due_at, session.presets_owed = round_.key, round_.due_at, bool(round_.steps)
    session.service_id = view.device.service_id
    effects += round_.effects
    _log(session, effects)
    return effects


def receive(session: Session, body: Message | None, now: float) -> Outcome:
    """The answer to the CPE's next message (``body`` None: an empty POST)."""
    session.step += 1
    if isinstance(body, Inform):
        return Outcome(AcsFault(8003, "Inform inside a session: the session is already open"))
    if session.phase is Phase.CLOSED:
        if body is None:
            return Outcome(None)
        return _abort(session, [], "", f"{_name(body)} after the session ended")
    if session.phase is Phase.CPE_REQUESTS:
        return _cpe_request(session, body, now)
    step = session.current
    assert step is not None
    session.current = None
    if isinstance(body, CpeFault):
        return _next(session, _fault(session, step, body))
    if body is None or type(body) is not tasks.RESPONSES[type(step.rpc)]:
        effects: list[Effect] = []
        if step.task_id is not None:
            effects.append(TaskFaulted(step.task_id, 8003, f"the CPE answered {_name(body)}"))
        return _abort(session, effects, _name(step.rpc), f"the CPE answered {_name(body)} to {_name(step.rpc)}")
    if step.task_id is not None:
        result = tasks.answer(step, body, now)
    else:
        result = presets_plan.answer(step, body, now, session.presets_key)
        if step.kind in ("preset.values", "preset.add"):
            session.changed = True
        elif step.kind == "preset.download":
            session.downloaded = True
    session.queue[:0] = result.then
    return _next(session, list(result.effects))


def _cpe_request(session: Session, body: Message | None, now: float) -> Outcome:
    if body is None:
        return _next(session, [])
    session.rpcs.append(_name(body))
    if isinstance(body, TransferComplete):
        f = body.fault
        effects: list[Effect] = [TransferEnded(body.command_key, f.code, f.string)]
        if f.code and body.command_key.startswith("preset-"):
            effects.append(FaultRecorded("preset", "Download", f.code, f.string,
                                         detail={"command_key": body.command_key}))
        _log(session, effects)
        return Outcome(TransferCompleteResponse(), tuple(effects))
    if isinstance(body, AutonomousTransferComplete):
        f = body.fault
        effects = []
        if f.code:
            effects.append(FaultRecorded("session", "AutonomousTransferComplete", f.code, f.string,
                                         detail={"url": body.transfer_url, "file_type": body.file_type}))
        _log(session, effects)
        return Outcome(AutonomousTransferCompleteResponse(), tuple(effects))
    if isinstance(body, GetRPCMethods):
        return Outcome(GetRPCMethodsResponse(ACS_METHODS))
    if isinstance(body, RequestDownload):
        return Outcome(RequestDownloadResponse())
    session.rpcs.pop()
    return _abort(session, [], "", f"{_name(body)} where the CPE may only send its own requests")


def _fault(session: Session, step: Step, fault: CpeFault) -> list[Effect]:
    """A CPE's fault to ``step``: the task faults (and ends here), or the presets are not
    applied this session (their other steps still go: none depends on a faulted one)."""
    detail: dict[str, Any] = {"parameters": [[f.name, f.code, f.string] for f in fault.set_faults]} \
        if fault.set_faults else {}
    if step.task_id is not None:
        effect: Effect = TaskFaulted(step.task_id, fault.code, fault.string, detail)
    else:
        session.presets_faulted = True
        effect = FaultRecorded("preset", _name(step.rpc), fault.code, fault.string, detail=detail)
    session.faults.append(f"{fault.code} {fault.string} ({_name(step.rpc)})")
    return [effect]


def _next(session: Session, effects: list[Effect]) -> Outcome:
    """Send the next step of the plan, or end the session."""
    while session.queue:
        step = session.queue.pop(0)
        if step.kind == "preset.reboot" and (not session.changed or session.downloaded or session.presets_faulted):
            continue  # nothing changed (or a Download reboots the CPE anyway)
        if session.sent >= MAX_RPCS:
            session.queue.insert(0, step)
            return _abort(session, effects, _name(step.rpc), f"more than {MAX_RPCS} RPCs in one session")
        session.current, session.phase = step, Phase.ACS_RPC
        session.sent += 1
        session.rpcs.append(_name(step.rpc))
        return Outcome(step.rpc, tuple(effects))
    if session.presets_owed and not session.presets_faulted:
        effects.append(PresetsApplied(session.presets_key, session.due_at, session.service_id, session.started_at))
        session.presets_owed = False
    session.phase = Phase.CLOSED
    return Outcome(None, tuple(effects))


def _abort(session: Session, effects: list[Effect], rpc: str, message: str) -> Outcome:
    """End the session on something it cannot go on from, with the fault recorded."""
    fault = FaultRecorded("session", rpc, None, message)
    effects = [*effects, fault]
    _log(session, effects)
    session.phase, session.current = Phase.CLOSED, None
    return Outcome(None, tuple(effects))


def _log(session: Session, effects: Sequence[Effect]) -> None:
    """The faults among ``effects``, as lines of the session's access log."""
    for e in effects:
        if isinstance(e, TaskFaulted):
            session.faults.append(f"{e.code} {e.string} (task {e.task_id})")
        elif isinstance(e, FaultRecorded):
            code = "" if e.code is None else f"{e.code} "
            session.faults.append(f"{code}{e.message} ({e.rpc or e.source})")


def _name(message: object) -> str:
    return "empty POST" if message is None else "Fault" if isinstance(message, CpeFault) else type(message).__name__

