"""Tasks as RPCs: what each kind of acs_tasks row asks the CPE, and what its answer changes.

A session's plan is a list of :class:`Step`: one RPC to send, whom it is for (a task, or the
presets: acs/plan.py), and what its answer handler needs. :func:`task_step` makes a task's first
step, :func:`answer` reads the CPE's answer into effects (and, for a refresh, the step that
follows). The args of each kind are those of :data:`acs.model.TASK_KINDS`; :func:`check_args`
is what the API and the admin validate them with.

Every parameter result read from the CPE goes out as :class:`~acs.model.ParametersKnown`
(``read_at`` = now), except a secret read back as "" (:func:`acs.datamodel.is_secret`): the
tree keeps the value the ACS set instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from acs import datamodel
from acs.messages import (
    AcsRequest,
    AddObject,
    AddObjectResponse,
    DeleteObject,
    DeleteObjectResponse,
    Download,
    DownloadResponse,
    FactoryReset,
    FactoryResetResponse,
    GetParameterAttributes,
    GetParameterAttributesResponse,
    GetParameterNames,
    GetParameterNamesResponse,
    GetParameterValues,
    GetParameterValuesResponse,
    GetRPCMethods,
    GetRPCMethodsResponse,
    Message,
    ParameterValue,
    Reboot,
    RebootResponse,
    SetParameterAttribute,
    SetParameterAttributes,
    SetParameterAttributesResponse,
    SetParameterValues,
    SetParameterValuesResponse,
    Upload,
    UploadResponse,
)
from acs.model import (
    TASK_KINDS,
    DeviceView,
    Effect,
    Param,
    ParametersForgotten,
    ParametersKnown,
    Task,
    TaskDone,
    TaskFaulted,
    TaskWaiting,
)

RESPONSES: dict[type[Any], type[Any]] = {
    GetParameterNames: GetParameterNamesResponse, GetParameterValues: GetParameterValuesResponse,
    SetParameterValues: SetParameterValuesResponse, GetParameterAttributes: GetParameterAttributesResponse,
    SetParameterAttributes: SetParameterAttributesResponse, AddObject: AddObjectResponse,
    DeleteObject: DeleteObjectResponse, Reboot: RebootResponse, FactoryReset: FactoryResetResponse,
    Download: DownloadResponse, Upload: UploadResponse, GetRPCMethods: GetRPCMethodsResponse,
}
"""The answer each request of the ACS expects (besides a CpeFault)."""
_REQUESTS: dict[str, type[Any]] = {cls.__name__: cls for cls in RESPONSES}


@dataclass(slots=True)
class Step:
    """One RPC of a session's plan. ``kind`` tells how to read its answer ("get", "refresh",
    ..., or "preset.values", ... for acs/plan.py's); ``data`` is what that needs, JSON-able."""

    rpc: AcsRequest
    kind: str
    task_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rpc": request_to_json(self.rpc), "kind": self.kind, "task_id": self.task_id, "data": self.data}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Step:
        return cls(request_from_json(d["rpc"]), d["kind"], d["task_id"], d["data"])


@dataclass(frozen=True, slots=True)
class Answer:
    """What an answer changes, and the steps it calls for next (before the rest of the plan)."""

    effects: tuple[Effect, ...] = ()
    then: tuple[Step, ...] = ()


def request_to_json(rpc: AcsRequest) -> dict[str, Any]:
    """``rpc`` as JSON-able data ({"method": "SetParameterValues", ...})."""
    d: dict[str, Any] = {"method": type(rpc).__name__}
    for f in fields(rpc):
        value = getattr(rpc, f.name)
        if isinstance(value, tuple):
            value = [[_plain(getattr(v, g.name)) for g in fields(v)]
                     if isinstance(v, ParameterValue | SetParameterAttribute) else v for v in value]
        d[f.name] = value
    return d


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def request_from_json(d: dict[str, Any]) -> AcsRequest:
    """The request :func:`request_to_json` gave ``d`` of."""
    cls = _REQUESTS[d["method"]]
    kwargs = {k: v for k, v in d.items() if k != "method"}
    if cls is SetParameterValues:
        kwargs["parameters"] = tuple(ParameterValue(*p) for p in kwargs["parameters"])
    elif cls is SetParameterAttributes:
        kwargs["parameters"] = tuple(SetParameterAttribute(n, c, v, ac, tuple(a))
                                     for n, c, v, ac, a in kwargs["parameters"])
    elif "names" in kwargs:
        kwargs["names"] = tuple(kwargs["names"])
    rpc: AcsRequest = cls(**kwargs)
    return rpc


# --- args -----------------------------------------------------------------------------------

_ARGS: dict[str, tuple[str, ...]] = {
    "get": ("names",), "set": ("values",), "refresh": ("path",), "add_object": ("path",),
    "delete_object": ("path",), "get_attributes": ("names",), "set_attributes": ("attributes",),
    "reboot": (), "factory_reset": (), "download": ("file_id", "url", "file_type"), "upload": ("file_type",),
}


def check_args(kind: str, args: Any) -> list[str]:
    """What is wrong with a task of ``kind`` with ``args`` (empty: fine). Paths may be aliases."""
    if kind not in TASK_KINDS:
        return [f"unknown task kind {kind!r} (one of {', '.join(TASK_KINDS)})"]
    if not isinstance(args, dict):
        return ["args must be an object"]
    problems = [f"{kind}: unknown argument {k!r}" for k in args if k not in _ARGS[kind]]
    if kind in ("get", "get_attributes"):
        names = args.get("names")
        if not isinstance(names, list) or not names:
            problems.append(f"{kind}: names must be a non-empty list of paths")
        else:
            problems += _paths(kind, names, leaf=False)
    elif kind == "set":
        problems += _check_values(args.get("values"))
    elif kind in ("refresh", "add_object", "delete_object"):
        path = args.get("path")
        if not isinstance(path, str):
            problems.append(f"{kind}: path must be a string")
        elif path_problems := _paths(kind, [path], leaf=False):
            problems += path_problems
        else:
            path = datamodel.resolve(path, "tr181")  # an alias is an object in both data models, or in neither
            if kind != "refresh" and not path.endswith("."):
                problems.append(f"{kind}: {path!r} is not an object (it must end with '.')")
            if kind == "delete_object" and not path.rstrip(".").rsplit(".", 1)[-1].isdigit():
                problems.append(f"delete_object: {path!r} is not an instance (it must end with a number and '.')")
    elif kind == "set_attributes":
        attributes = args.get("attributes")
        if not isinstance(attributes, list) or not attributes:
            problems.append("set_attributes: attributes must be a non-empty list of [path, notification]")
        else:
            for a in attributes:
                if not (isinstance(a, list) and len(a) == 2 and isinstance(a[0], str) and type(a[1]) is int
                        and 0 <= a[1] <= 6):
                    problems.append(f"set_attributes: {a!r} is not [path, notification 0-6]")
                else:
                    problems += _paths(kind, [a[0]], leaf=False)
    elif kind == "download":
        problems += _check_download(args)
    elif kind == "upload" and not (isinstance(args.get("file_type"), str) and args["file_type"]):
        problems.append("upload: file_type must be given (e.g. '1 Vendor Configuration File')")
    return problems


def _paths(kind: str, paths: Iterable[Any], *, leaf: bool) -> list[str]:
    problems = []
    for path in paths:
        if not isinstance(path, str):
            problems.append(f"{kind}: {path!r} is not a path")
        elif (p := datamodel.problem(path)) is not None:
            problems.append(f"{kind}: {p}")
        elif leaf and (datamodel.resolve(path, "tr181").endswith(".") or not path):
            problems.append(f"{kind}: {path!r} is an object, not a parameter")
    return problems


def _check_values(values: Any) -> list[str]:
    if not isinstance(values, list) or not values:
        return ["set: values must be a non-empty list of [path, value, type]"]
    problems = []
    for v in values:
        if not (isinstance(v, list) and len(v) in (2, 3) and isinstance(v[0], str)
                and isinstance(v[1], str | int | float | bool) and (len(v) == 2 or _is_type(v[2]))):
            problems.append(f"set: {v!r} is not [path, value] or [path, value, 'xsd:type']")
        else:
            problems += _paths("set", [v[0]], leaf=True)
    return problems


def _is_type(t: Any) -> bool:
    return isinstance(t, str) and t.startswith("xsd:") and len(t) > 4


def _check_download(args: dict[str, Any]) -> list[str]:
    if "file_id" in args:
        if type(args["file_id"]) is not int or "url" in args:
            return ["download: file_id must be a file's id, without url"]
        return []
    url, file_type = args.get("url"), args.get("file_type")
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        return ["download: give file_id, or url (http or https) and file_type"]
    if not (isinstance(file_type, str) and file_type):
        return ["download: file_type must be given with url (e.g. '1 Firmware Upgrade Image')"]
    return []


def text(value: str | float | bool) -> str:
    """A JSON value as CWMP text (booleans as xsd:boolean writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- tasks to steps ---------------------------------------------------------------------------

def task_step(task: Task, view: DeviceView) -> Step | TaskFaulted:
    """The first step of ``task`` on the device of ``view``, or why it cannot be sent."""
    problems = check_args(task.kind, task.args)
    if problems:
        return TaskFaulted(task.id, 8003, "; ".join(problems))
    dm = view.device.data_model
    args = task.args
    key = f"task-{task.id}"
    rpc: AcsRequest
    try:
        if task.kind == "get":
            rpc = GetParameterValues(tuple(datamodel.resolve(n, dm) for n in args["names"]))
        elif task.kind == "set":
            rpc = SetParameterValues(tuple(
                ParameterValue(datamodel.resolve(v[0], dm), text(v[1]), v[2] if len(v) == 3 else "xsd:string")
                for v in args["values"]), key)
        elif task.kind == "refresh":
            rpc = GetParameterNames(datamodel.resolve(args["path"], dm), False)
        elif task.kind == "add_object":
            rpc = AddObject(datamodel.resolve(args["path"], dm), key)
        elif task.kind == "delete_object":
            rpc = DeleteObject(datamodel.resolve(args["path"], dm), key)
        elif task.kind == "get_attributes":
            rpc = GetParameterAttributes(tuple(datamodel.resolve(n, dm) for n in args["names"]))
        elif task.kind == "set_attributes":
            rpc = SetParameterAttributes(tuple(SetParameterAttribute(datamodel.resolve(p, dm), True, n)
                                               for p, n in args["attributes"]))
        elif task.kind == "reboot":
            rpc = Reboot(key)
        elif task.kind == "factory_reset":
            rpc = FactoryReset()
        elif task.kind == "download":
            if "file_id" in args:
                f = view.files.get(args["file_id"])
                if f is None:
                    return TaskFaulted(task.id, 8003, f"file {args['file_id']} is not there (deleted, or incomplete)")
                rpc = Download(key, f.file_type, f.url, file_size=f.size, target_file_name=f.name)
            else:
                rpc = Download(key, args["file_type"], args["url"])
        else:  # upload
            url = view.context.get("upload_url")
            if not isinstance(url, str) or not url:
                return TaskFaulted(task.id, 8002, "no upload URL: the ACS has no address for the CPE to put to")
            rpc = Upload(key, args["file_type"], url)
    except KeyError as e:  # an alias unknown since the task was queued
        return TaskFaulted(task.id, 8003, str(e.args[0]))
    if isinstance(rpc, GetParameterNames):
        return Step(rpc, task.kind, task.id, {"secrets": secrets_under(rpc.path, view.tree)})
    return Step(rpc, task.kind, task.id)


def secrets_under(prefix: str, tree: Mapping[str, Param]) -> dict[str, list[str]]:
    """The secrets ``tree`` keeps under ``prefix`` (path -> [value, type]), to keep them through
    a refresh that reads them back as ""."""
    return {p.path: [p.value, p.type] for p in tree.values()
            if p.value and datamodel.is_secret(p.path) and datamodel.under(p.path, prefix)}


# --- answers to effects ---------------------------------------------------------------------

def read(values: Iterable[ParameterValue], now: float, *, writable: dict[str, bool] | None = None,
         secrets: dict[str, list[str]] | None = None) -> list[Param]:
    """Params of a GetParameterValuesResponse: a secret read as "" is left out, or kept at the
    value ``secrets`` says the ACS set; ``writable`` as a GetParameterNames just said."""
    out = []
    for v in values:
        if v.value == "" and datamodel.is_secret(v.name):
            if secrets and v.name in secrets:
                value, type_ = secrets[v.name]
                out.append(Param(v.name, value, type_, True if writable is None else writable.get(v.name), now))
            continue
        out.append(Param(v.name, v.value, v.type, None if writable is None else writable.get(v.name), now))
    return out


def written(rpc: SetParameterValues, now: float) -> ParametersKnown:
    """What a SetParameterValues that succeeded made known."""
    return ParametersKnown(tuple(Param(v.name, v.value, v.type, True, now) for v in rpc.parameters))


def refreshed(path: str, params: list[Param], objects: Mapping[str, bool | None], now: float) -> tuple[Effect, ...]:
    """A subtree read again in full: what the tree held under ``path`` goes (deleted instances
    with it), what was read comes in: the values, and the objects (name -> writable, None when
    not said)."""
    known = ParametersKnown(tuple([Param(o, None, "", w, now) for o, w in objects.items()] + params))
    return (ParametersForgotten(path), known) if path.endswith(".") or not path else (known,)


def answer(step: Step, response: Message, now: float) -> Answer:
    """Effects (and next steps) of the answer to a task's step; ``response`` is of the type
    :data:`RESPONSES` gives for ``step.rpc``."""
    task_id = step.task_id
    assert task_id is not None
    rpc = step.rpc
    if isinstance(response, GetParameterValuesResponse):
        if step.kind == "refresh.values":
            writable: dict[str, bool] = step.data["writable"]
            assert isinstance(rpc, GetParameterValues)
            params = read(response.parameters, now, writable=writable, secrets=step.data["secrets"])
            effects = refreshed(rpc.names[0], params, step.data["objects"], now)
            return Answer((*effects, TaskDone(task_id, {"parameters": len(response.parameters)})))
        params = read(response.parameters, now)
        return Answer((ParametersKnown(tuple(params)),
                       TaskDone(task_id, {"values": {v.name: v.value for v in response.parameters}})))
    if isinstance(response, GetParameterNamesResponse):  # refresh: names and writability, then values
        assert isinstance(rpc, GetParameterNames)
        objects = {i.name: i.writable for i in response.parameters if i.name.endswith(".")}
        names = {i.name: i.writable for i in response.parameters if not i.name.endswith(".")}
        follow = Step(GetParameterValues((rpc.path,)), "refresh.values", task_id,
                      {"writable": names, "objects": objects, "secrets": step.data["secrets"]})
        return Answer(then=(follow,))
    if isinstance(response, SetParameterValuesResponse):
        assert isinstance(rpc, SetParameterValues)
        return Answer((written(rpc, now), TaskDone(task_id, {"status": response.status})))
    if isinstance(response, AddObjectResponse):
        assert isinstance(rpc, AddObject)
        return Answer((ParametersKnown((Param(f"{rpc.path}{response.instance}.", None, "", True, now),)),
                       TaskDone(task_id, {"instance": response.instance, "status": response.status})))
    if isinstance(response, DeleteObjectResponse):
        assert isinstance(rpc, DeleteObject)
        return Answer((ParametersForgotten(rpc.path), TaskDone(task_id, {"status": response.status})))
    if isinstance(response, GetParameterAttributesResponse):
        return Answer((TaskDone(task_id, {"attributes": {a.name: a.notification for a in response.parameters}}),))
    if isinstance(response, RebootResponse):
        assert isinstance(rpc, Reboot)
        return Answer((TaskWaiting(task_id, rpc.command_key),))
    if isinstance(response, DownloadResponse | UploadResponse):
        assert isinstance(rpc, Download | Upload)
        if response.status == 1:
            return Answer((TaskWaiting(task_id, rpc.command_key),))
        return Answer((TaskDone(task_id, {"status": response.status}),))
    return Answer((TaskDone(task_id),))  # SetParameterAttributes, FactoryReset
