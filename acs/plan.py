"""Presets: the state a device should be in, and the fewest RPCs that bring it there.

A preset (a row of acs_presets) has a ``match`` (all given keys must hold) and ``actions``::

    match:   {"tags": [...] (all of), "oui": "...", "product_class": "...",
              "software_version": "glob" (fnmatch), "data_model": "tr098"|"tr181",
              "events": ["1 BOOT", ...] (any of the Inform's)}
    actions: {"set": path, "value": template, "type": "xsd:..."}   (type xsd:string if left out)
             {"refresh": path, "max_age": seconds}
             {"add_object": path, "count": n}                        (at least n instances)
             {"download": file_id}
             {"reboot": true}                                         (after a change, see below)
             {"connection_request_credentials": true}

Paths are full paths or aliases (acs/datamodel.py). Values are Jinja2 templates over the
device's context (``device``, ``service``, ``customer``: acs/store.py ``template_context``),
rendered in a sandbox with undefined names an error: a template that fails (no service linked)
skips its action with a fault. The presets that match apply in weight, then id order, so a later
one wins on the same parameter: :func:`desired` is the state they declare.

The plan (:func:`preset_round`) compares it with the tree the ACS knows:

- values: equal -> nothing; different, or unknown (not in the tree, e.g. after 0 BOOTSTRAP) ->
  one SetParameterValues with all of them (ParameterKey = :func:`presets_key`). Secrets
  (passwords, keys) read back as "" are compared with what the ACS last set, which the tree
  keeps; a "" is never a difference. Values compare as their type: "1" is "true" for a boolean.
- objects: instances known from the tree ("X.1.", "X.2." or below) -> AddObject for each
  missing one; none known -> GetParameterNames(X., next level) first.
- refresh: GetParameterValues of the subtree when its oldest value is older than ``max_age``
  or unknown; ``PresetsApplied.due_at`` is when the next one falls due.
- download: a firmware (a file with a version) only to a device not on that version; other
  files once per presets generation, and again after 0 BOOTSTRAP.
- reboot: only after a SetParameterValues or AddObject of the presets went through in the
  session (and no Download: a CPE reboots for that itself), so a device in its declared state
  is never rebooted.
- connection_request_credentials: ConnectionRequestUsername = the device's cwmp_id and a new
  random ConnectionRequestPassword, unless the ACS set them already (and no 0 BOOTSTRAP since:
  a factory reset brings the CPE's own back).

Order: GetParameterNames, AddObject, SetParameterValues, GetParameterValues, Download, Reboot.
A BOOTSTRAP'd device with a PPPoE and Wi-Fi preset is one SetParameterValues.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from acs import datamodel
from acs.messages import (
    AcsRequest,
    AddObject,
    AddObjectResponse,
    Download,
    GetParameterNames,
    GetParameterNamesResponse,
    GetParameterValues,
    GetParameterValuesResponse,
    Message,
    ParameterValue,
    Reboot,
    SetParameterValues,
    SetParameterValuesResponse,
)
from acs.model import (
    ROOTS,
    ConnectionRequestCredentials,
    DeviceView,
    Effect,
    FaultRecorded,
    FileRef,
    Param,
    ParametersKnown,
    Preset,
    PresetsApplied,
)
from acs.tasks import Answer, Step, read, refreshed, request_to_json, secrets_under, text, written

MATCH_KEYS = ("tags", "oui", "product_class", "software_version", "data_model", "events")
ACTIONS: dict[str, tuple[str, ...]] = {  # an action's key -> the other keys it may have
    "set": ("value", "type"), "refresh": ("max_age",), "add_object": ("count",), "download": (),
    "reboot": (), "connection_request_credentials": (),
}
MAX_COUNT = 16
"""The most instances an add_object action may ask for (each is one AddObject)."""
FIRMWARE = "1 Firmware Upgrade Image"

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@functools.lru_cache(maxsize=512)
def _template(source: str) -> Template:
    return _ENV.from_string(source)


def presets_key(presets: Sequence[Preset]) -> str:
    """A short stable hash of the enabled presets (ids, weights, match, actions): the presets
    generation a device was brought to (acs_devices.presets_key); 16 hex digits, so that
    ``preset-<key>`` fits a CommandKey and the key a ParameterKey (32 characters)."""
    data = sorted([p.id, p.weight, p.match, p.actions] for p in presets if p.enabled)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- checks -----------------------------------------------------------------------------------

def check_preset(match: Any, actions: Any) -> list[str]:
    """What is wrong with a preset's ``match`` and ``actions`` (empty: fine); the admin's editor
    shows these."""
    problems = _check_match(match)
    if not isinstance(actions, list):
        return [*problems, "actions must be a list"]
    for i, action in enumerate(actions, 1):
        problems += [f"action {i}: {p}" for p in _check_action(action)]
    return problems


def _check_match(match: Any) -> list[str]:
    if not isinstance(match, dict):
        return ["match must be an object"]
    problems = [f"match: unknown key {k!r} (one of {', '.join(MATCH_KEYS)})" for k in match if k not in MATCH_KEYS]
    for key in ("tags", "events"):
        if key in match and not (isinstance(match[key], list) and match[key]
                                 and all(isinstance(t, str) and t for t in match[key])):
            problems.append(f"match: {key} must be a non-empty list of names")
    for key in ("oui", "product_class", "software_version"):
        if key in match and not isinstance(match[key], str):
            problems.append(f"match: {key} must be a string")
    if "data_model" in match and match["data_model"] not in tuple(ROOTS):
        problems.append(f"match: data_model must be one of {', '.join(ROOTS)}")
    return problems


def _check_action(action: Any) -> list[str]:
    if not isinstance(action, dict):
        return ["an action must be an object"]
    kinds = [k for k in action if k in ACTIONS]
    if len(kinds) != 1:
        return [f"an action has one of {', '.join(ACTIONS)}"]
    kind = kinds[0]
    problems = [f"{kind}: unknown key {k!r}" for k in action if k != kind and k not in ACTIONS[kind]]
    arg = action[kind]
    if kind in ("set", "refresh", "add_object"):
        if not isinstance(arg, str):
            return [*problems, f"{kind}: the path must be a string"]
        if (p := datamodel.problem(arg)) is not None:
            return [*problems, f"{kind}: {p}"]
        arg = datamodel.resolve(arg, "tr181")  # an alias is an object in both data models, or in neither
    if kind == "set":
        if arg.endswith(".") or not arg:
            problems.append(f"set: {arg!r} is an object, not a parameter")
        value = action.get("value")
        if not isinstance(value, str | int | float | bool):
            problems.append("set: value must be a template (a string), a number or a boolean")
        elif isinstance(value, str):
            try:
                _template(value)
            except Exception as e:  # a syntax error (or the sandbox's refusal) of an operator's text
                problems.append(f"set: the template does not compile: {e}")
        if "type" in action and not (isinstance(action["type"], str) and action["type"].startswith("xsd:")):
            problems.append("set: type must be an xsd type (xsd:string, xsd:unsignedInt, xsd:boolean, ...)")
    elif kind == "refresh":
        age = action.get("max_age")
        if isinstance(age, bool) or not isinstance(age, int | float) or not math.isfinite(age) or age <= 0:
            problems.append("refresh: max_age must be a number of seconds above 0")
    elif kind == "add_object":
        if not arg.endswith("."):
            problems.append(f"add_object: {arg!r} is not an object (it must end with '.')")
        count = action.get("count")
        if type(count) is not int or not 1 <= count <= MAX_COUNT:
            problems.append(f"add_object: count must be a whole number from 1 to {MAX_COUNT}")
    elif kind == "download":
        if type(arg) is not int:
            problems.append("download: give the id of a file")
    elif arg is not True:
        problems.append(f"{kind}: must be true")
    return problems


# --- what the presets declare -----------------------------------------------------------------

def matches(preset: Preset, view: DeviceView) -> bool:
    """Whether ``preset`` applies to the device of ``view`` in this session."""
    match = preset.match
    if not preset.enabled or not isinstance(match, dict):
        return False
    d = view.device
    for key, want in match.items():
        if key == "tags":
            ok = isinstance(want, list) and all(t in d.tags for t in want)  # unhashable items just do not match
        elif key == "events":
            ok = isinstance(want, list) and any(e in want for e in view.events)
        elif key == "oui":
            ok = isinstance(want, str) and want.upper() == d.oui.upper()
        elif key == "product_class":
            ok = want == d.product_class
        elif key == "software_version":
            ok = isinstance(want, str) and fnmatch.fnmatchcase(d.software_version, want)
        else:
            ok = key == "data_model" and want == d.data_model
        if not ok:
            return False
    return True


@dataclass(slots=True)
class Desired:
    """The state the matching presets declare for one device, paths resolved."""

    key: str
    presets: list[Preset] = field(default_factory=list)
    values: dict[str, ParameterValue] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)
    refreshes: dict[str, float] = field(default_factory=dict)
    downloads: list[FileRef] = field(default_factory=list)
    reboot: bool = False
    credentials: tuple[str, str] | None = None  # (username, password) to set
    faults: list[FaultRecorded] = field(default_factory=list)


def desired(view: DeviceView, presets: Sequence[Preset]) -> Desired:
    """What the presets that match ``view`` declare; an action that cannot be applied (a bad
    shape, a failing template, a path of the other data model, a missing file) is left out
    with a FaultRecorded(source="preset")."""
    d = Desired(presets_key(presets))
    credentials = False
    for preset in sorted((p for p in presets if matches(p, view)), key=lambda p: (p.weight, p.id)):
        d.presets.append(preset)
        actions: Any = preset.actions  # as stored: checked here, action by action
        for i, action in enumerate(actions if isinstance(actions, list) else [], 1):
            problem = _apply(d, action, view)
            if problem is not None:
                d.faults.append(FaultRecorded("preset", "", None, f"preset {preset.name!r} action {i}: {problem}",
                                              detail={"preset": preset.id, "action": i}))
            credentials = credentials or (problem is None and "connection_request_credentials" in action)
    if credentials and (view.device.connection_request_username != view.device.cwmp_id
                        or "0 BOOTSTRAP" in view.events):  # a factory reset lost them
        d.credentials = (view.device.cwmp_id, secrets.token_urlsafe(18))
    return d


def _apply(d: Desired, action: Any, view: DeviceView) -> str | None:
    """Add one action to ``d``; what is wrong with it, if anything."""
    problems = _check_action(action)
    if problems:
        return "; ".join(problems)
    dm = view.device.data_model
    if "reboot" in action:
        d.reboot = True
    elif "download" in action:
        f = view.files.get(action["download"])
        if f is None:
            return f"file {action['download']} is not there (deleted, or incomplete)"
        if f not in d.downloads:
            d.downloads.append(f)
    elif "connection_request_credentials" not in action:
        kind = next(k for k in ("set", "refresh", "add_object") if k in action)
        path = datamodel.resolve(action[kind], dm)
        if path and not path.startswith(ROOTS[dm]):
            return f"{path!r} is not of this device's data model ({dm})"
        if kind == "refresh":
            d.refreshes[path] = min(float(action["max_age"]), d.refreshes.get(path, math.inf))
        elif kind == "add_object":
            d.objects[path] = action["count"]
        else:
            value = action["value"]
            try:
                rendered = _template(value).render(view.context) if isinstance(value, str) else text(value)
            except Exception as e:  # an operator's template: undefined names, bad filters, ...
                return f"the template of {action['set']} failed: {type(e).__name__}: {e}"
            d.values.pop(path, None)  # a later preset's value goes where it would have
            d.values[path] = ParameterValue(path, rendered, action.get("type", "xsd:string"))
    return None


# --- the plan ---------------------------------------------------------------------------------

_INTEGERS = ("xsd:int", "xsd:unsignedInt", "xsd:long", "xsd:unsignedLong")


def same(known: str, want: str, type_: str) -> bool:
    """Whether the CPE's ``known`` text is the value ``want`` of ``type_``."""
    if known == want:
        return True
    if type_ == "xsd:boolean":
        truth = {"1": True, "true": True, "0": False, "false": False}
        a, b = truth.get(known.strip().lower()), truth.get(want.strip().lower())
        return a is not None and a == b
    if type_ in _INTEGERS:
        try:
            return int(known) == int(want)
        except ValueError:
            return False
    return False


def instances(tree: Mapping[str, Param], path: str) -> set[int] | None:
    """The instance numbers of object ``path`` the tree knows, None if it knows nothing of it
    (an empty set: it was listed and has none)."""
    found: set[int] = set()
    listed = path in tree
    for p in tree:
        if p.startswith(path) and len(p) > len(path):
            head, dot, _ = p[len(path):].partition(".")
            if dot and head.isdigit():
                found.add(int(head))
    return found if found or listed else None


@dataclass(slots=True)
class Round:
    """The presets' part of a session's plan: its steps, the effects known at once (faults;
    PresetsApplied when there is nothing to do), the presets key and the next refresh."""

    steps: list[Step]
    effects: list[Effect]
    key: str
    due_at: float | None
    desired: Desired


def preset_round(view: DeviceView, presets: Sequence[Preset]) -> Round:
    """The RPCs the presets call for now on the device of ``view`` (whose tree is what the ACS
    knows: an empty one after 0 BOOTSTRAP)."""
    d = desired(view, presets)
    tree, now, key = view.tree, view.now, d.key
    effects: list[Effect] = list(d.faults)
    steps: list[Step] = []
    for path, count in d.objects.items():
        known = instances(tree, path)
        if known is None:
            steps.append(Step(GetParameterNames(path, True), "preset.instances", None, {"path": path, "count": count}))
        else:
            steps += [Step(AddObject(path, key), "preset.add") for _ in range(count - len(known))]
    values: list[ParameterValue] = []
    for path, want in d.values.items():
        if d.credentials is not None and path in _credential_paths(view):
            continue
        have = tree.get(path)
        if have is not None and have.writable is False:
            effects.append(FaultRecorded("preset", "SetParameterValues", None, f"{path} is not writable",
                                         detail={"path": path}))
        elif have is None or have.value is None or not (
                same(have.value, want.value, want.type) or (have.value == "" and datamodel.is_secret(path))):
            values.append(want)
    data: dict[str, Any] = {}
    if d.credentials is not None:
        username_path, password_path = _credential_paths(view)
        values += [ParameterValue(username_path, d.credentials[0]), ParameterValue(password_path, d.credentials[1])]
        data["credentials"] = list(d.credentials)
    if values:
        steps.append(Step(SetParameterValues(tuple(values), key), "preset.values", None, data))
    dues = []
    for path, max_age in d.refreshes.items():
        subtree = [p.read_at for p in tree.values() if datamodel.under(p.path, path)]
        if not subtree or now - min(subtree) >= max_age:
            steps.append(Step(GetParameterValues((path,)), "preset.refresh", None,
                              {"path": path, "secrets": secrets_under(path, tree)}))
            dues.append(now + max_age)
        else:
            dues.append(min(subtree) + max_age)
    for f in d.downloads:
        if _download_due(f, view, key):
            steps.append(Step(Download(f"preset-{key}", f.file_type, f.url, file_size=f.size,
                                       target_file_name=f.name), "preset.download"))
    if d.reboot and steps:
        steps.append(Step(Reboot(f"preset-{key}"), "preset.reboot"))
    due_at = min(dues, default=None)
    if not steps:
        effects.append(PresetsApplied(key, due_at, view.device.service_id))
    return Round(steps, effects, key, due_at, d)


def _credential_paths(view: DeviceView) -> tuple[str, str]:
    dm = view.device.data_model
    return (datamodel.resolve("@management.connection_request_username", dm),
            datamodel.resolve("@management.connection_request_password", dm))


def _download_due(f: FileRef, view: DeviceView, key: str) -> bool:
    if f.version:
        return view.device.software_version != f.version
    return view.device.presets_key != key or "0 BOOTSTRAP" in view.events


def answer(step: Step, response: Message, now: float, key: str) -> Answer:
    """Effects (and next steps) of the answer to a step of the presets; ``response`` is of the
    type the request expects (acs/tasks.py RESPONSES)."""
    rpc = step.rpc
    if isinstance(response, SetParameterValuesResponse):
        assert isinstance(rpc, SetParameterValues)
        credentials = step.data.get("credentials")
        if not credentials:
            return Answer((written(rpc, now),))
        # the password goes to the store sealed, not into the tree in clear (nothing compares it)
        kept = tuple(p for p in written(rpc, now).params
                     if not p.path.endswith(".ManagementServer.ConnectionRequestPassword"))
        return Answer((ParametersKnown(kept), ConnectionRequestCredentials(*credentials)))
    if isinstance(response, GetParameterNamesResponse):  # the instances of an add_object's object
        path, count = step.data["path"], step.data["count"]
        found = {n: i.writable for i in response.parameters
                 if i.name.startswith(path) and (n := i.name[len(path):].rstrip(".")).isdigit()}
        listed = [Param(path, None, "", None, now)] + [Param(f"{path}{n}.", None, "", w, now) for n, w in found.items()]
        adds = tuple(Step(AddObject(path, key), "preset.add") for _ in range(count - len(found)))
        return Answer((ParametersKnown(tuple(listed)),), adds)
    if isinstance(response, AddObjectResponse):
        assert isinstance(rpc, AddObject)
        return Answer((ParametersKnown((Param(f"{rpc.path}{response.instance}.", None, "", True, now),)),))
    if isinstance(response, GetParameterValuesResponse):
        path = step.data["path"]
        params = read(response.parameters, now, secrets=step.data["secrets"])
        return Answer(refreshed(path, params, {path: None} if path.endswith(".") else {}, now))
    return Answer()  # Download, Reboot: the CPE reports the end later (TransferComplete, M Reboot)


# --- dry run ----------------------------------------------------------------------------------

@dataclass(slots=True)
class DryRun:
    """What the presets would do to a device: which match, the values they declare, the RPCs
    of the first round (a GetParameterNames may lead to AddObjects, a change to the Reboot),
    and the faults."""

    key: str
    matched: list[Preset]
    desired: Desired
    rpcs: list[AcsRequest]
    faults: list[FaultRecorded]
    due_at: float | None


def dry_run(view: DeviceView, presets: Sequence[Preset]) -> DryRun:
    """The presets against ``view`` without a session (the admin's "dry run against a device")."""
    r = preset_round(view, presets)
    faults = [e for e in r.effects if isinstance(e, FaultRecorded)]
    return DryRun(r.key, r.desired.presets, r.desired, [s.rpc for s in r.steps], faults, r.due_at)


def dry_run_json(view: DeviceView, presets: Sequence[Preset]) -> dict[str, Any]:
    """:func:`dry_run` as JSON-able data: {"presets_key", "matched": [{"id", "name"}], "values":
    {path: [value, type]}, "objects": {path: count}, "refreshes": {path: max_age}, "downloads":
    [file id], "reboot", "connection_request_credentials", "rpcs": [{"method": ..., ...}],
    "faults": [{"rpc", "code", "message", "detail"}], "due_at"} (what acs_dry_runs.result holds)."""
    r = dry_run(view, presets)
    d = r.desired
    return {
        "presets_key": r.key,
        "matched": [{"id": p.id, "name": p.name} for p in r.matched],
        "values": {path: [v.value, v.type] for path, v in d.values.items()},
        "objects": d.objects,
        "refreshes": d.refreshes,
        "downloads": [f.id for f in d.downloads],
        "reboot": d.reboot,
        "connection_request_credentials": d.credentials is not None,
        "rpcs": [request_to_json(rpc) for rpc in r.rpcs],
        "faults": [{"rpc": f.rpc, "code": f.code, "message": f.message, "detail": f.detail} for f in r.faults],
        "due_at": r.due_at,
    }
