# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small CRI client: the pod sandbox calls of runtime.v1.RuntimeService over grpcio.

kubelet talks to a container runtime through the CRI, gRPC with the messages
of k8s.io/cri-api ``pkg/apis/runtime/v1/api.proto``. This client makes the
calls kubelet makes to start and end a pod's sandbox (Version, RunPodSandbox,
PodSandboxStatus, StopPodSandbox, RemovePodSandbox, ListPodSandbox) and to
run a container in it (CreateContainer, StartContainer, ContainerStatus),
through grpcio's generic ``unary_unary`` with a protobuf wire codec of its own
for just the fields used: no generated code, no protobuf package. The field
numbers below are those of api.proto.
"""
from __future__ import annotations

import json
import struct

try:
    import grpc
except ImportError:  # the suite skips, naming grpcio (daemon.missing)
    grpc = None

SERVICE = "/runtime.v1.RuntimeService/"
# Enums of api.proto.
SANDBOX_READY, SANDBOX_NOTREADY = 0, 1
POD, CONTAINER, NODE = 0, 1, 2  # NamespaceMode
TCP, UDP, SCTP = 0, 1, 2  # Protocol
UNCONFINED = 1  # SecurityProfile.ProfileType
CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED = 0, 1, 2


# ----------------------------------------------------------------------------- wire format: encoding
def _varint(value):
    if value < 0:
        value += 1 << 64  # int32/int64 negatives: ten bytes, two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(number, value):
    """A varint field (int32, int64, uint32, bool, enum); proto3 leaves zero out."""
    return _varint(number << 3) + _varint(int(value)) if value else b""


def data(number, value):
    """A length-delimited field: a string, bytes or an encoded message."""
    if value is None:
        return b""
    if isinstance(value, str):
        value = value.encode()
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def strings(number, values):
    return b"".join(data(number, v) for v in values)


def mapping(number, values):
    """A map<string, string> field: one entry message {1: key, 2: value} per item."""
    return b"".join(data(number, data(1, k) + data(2, v)) for k, v in sorted((values or {}).items()))


# ----------------------------------------------------------------------------- wire format: decoding
def _read_varint(buf, pos):
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf):
    """(field number, value) of every field: an int for varints, bytes for length-delimited ones."""
    pos, out = 0, []
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, pos = _read_varint(buf, pos)
        elif kind == 2:
            size, pos = _read_varint(buf, pos)
            value, pos = bytes(buf[pos:pos + size]), pos + size
        elif kind == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif kind == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError("unsupported protobuf wire type %d (field %d)" % (kind, number))
        out.append((number, value))
    return out


def decode(buf, schema):
    """A dict of the fields the schema names: {number: (name, kind)}.

    kind: "str", "int", "map" (map<string, string>), a nested schema, or a
    one-item list of those for a repeated field. Fields not named are skipped.
    """
    out = {}
    for name, kind in schema.values():
        if isinstance(kind, list):
            out[name] = []
        elif kind == "map":
            out[name] = {}
        else:
            out[name] = "" if kind == "str" else 0 if kind == "int" else None
    for number, value in fields(buf):
        if number not in schema:
            continue
        name, kind = schema[number]
        repeated = isinstance(kind, list)
        kind = kind[0] if repeated else kind
        if kind == "str":
            value = value.decode()
        elif kind == "map":
            entry = decode(value, {1: ("key", "str"), 2: ("value", "str")})
            out[name][entry["key"]] = entry["value"]
            continue
        elif isinstance(kind, dict):
            value = decode(value, kind)
        if repeated:
            out[name].append(value)
        else:
            out[name] = value
    return out


METADATA = {1: ("name", "str"), 2: ("uid", "str"), 3: ("namespace", "str"), 4: ("attempt", "int")}
NETWORK = {1: ("ip", "str"), 2: ("additional_ips", [{1: ("ip", "str")}])}
SANDBOX_STATUS = {1: ("id", "str"), 2: ("metadata", METADATA), 3: ("state", "int"), 4: ("created_at", "int"),
                  5: ("network", NETWORK), 7: ("labels", "map"), 8: ("annotations", "map"),
                  9: ("runtime_handler", "str")}
STATUS_RESPONSE = {1: ("status", SANDBOX_STATUS), 2: ("info", "map")}
SANDBOX = {1: ("id", "str"), 2: ("metadata", METADATA), 3: ("state", "int"), 4: ("created_at", "int"),
           5: ("labels", "map"), 6: ("annotations", "map"), 7: ("runtime_handler", "str")}
VERSION = {1: ("version", "str"), 2: ("runtime_name", "str"), 3: ("runtime_version", "str"),
           4: ("runtime_api_version", "str")}
CONTAINER_STATUS = {1: ("id", "str"), 3: ("state", "int"), 7: ("exit_code", "int"), 10: ("reason", "str"),
                    11: ("message", "str")}


# ----------------------------------------------------------------------------- messages
def sandbox_config(name, uid, namespace="default", attempt=0, log_directory="", cgroup_parent="",
                   port_mappings=(), labels=None, annotations=None, hostname=None):
    """PodSandboxConfig as kubelet fills it for a pod of the pod network.

    port_mappings: (protocol, container_port, host_port, host_ip) tuples, a pod's hostPorts.
    """
    metadata = data(1, name) + data(2, uid) + data(3, namespace) + varint(4, attempt)
    ports = b"".join(data(5, varint(1, proto) + varint(2, cport) + varint(3, hport) + data(4, host_ip or None))
                     for proto, cport, hport, host_ip in port_mappings)
    # LinuxSandboxSecurityContext: network and IPC of the pod, PID per container (v1 pods),
    # seccomp and AppArmor unconfined (what kubelet sends when the pod names no profile).
    namespaces = varint(1, POD) + varint(2, CONTAINER) + varint(3, POD)
    security = data(1, namespaces) + data(9, varint(1, UNCONFINED)) + data(10, varint(1, UNCONFINED))
    linux = data(1, cgroup_parent or None) + data(2, security)
    return (data(1, metadata) + data(2, hostname if hostname is not None else name) + data(3, log_directory or None)
            + ports + mapping(6, labels) + mapping(7, annotations) + data(8, linux))


def container_config(name, image, command=(), args=(), log_path="", attempt=0, labels=None):
    metadata = data(1, name) + varint(2, attempt)
    return (data(1, metadata) + data(2, data(1, image)) + strings(3, command) + strings(4, args)
            + mapping(9, labels) + data(11, log_path or None))


class CRIError(Exception):
    """A CRI call failed: the method, the gRPC status code and the runtime's message."""

    def __init__(self, method, error):
        self.method, self.code, self.details = method, error.code(), error.details()
        super().__init__("%s: %s: %s" % (method, self.code.name, self.details))


class RuntimeService:
    """runtime.v1.RuntimeService at a unix socket."""

    def __init__(self, socket, timeout=60):
        if grpc is None:
            raise RuntimeError("the CRI client needs grpcio (pip install grpcio)")
        self.timeout = timeout
        self.channel = grpc.insecure_channel("unix://" + socket)
        self._stubs = {}

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method, request, timeout=None):
        stub = self._stubs.get(method)
        if stub is None:
            stub = self._stubs[method] = self.channel.unary_unary(
                SERVICE + method, request_serializer=bytes, response_deserializer=bytes)
        try:
            return stub(request, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise CRIError(method, error) from None

    def version(self, timeout=None):
        return decode(self.call("Version", data(1, "v1"), timeout), VERSION)

    def run_pod_sandbox(self, config, runtime_handler=""):
        """The new sandbox's ID; config is an encoded PodSandboxConfig (sandbox_config)."""
        response = self.call("RunPodSandbox", data(1, config) + data(2, runtime_handler or None))
        return decode(response, {1: ("id", "str")})["id"]

    def pod_sandbox_status(self, sandbox_id, verbose=False):
        """{"status": {...}, "info": {...}}; with verbose, info["info"] is the runtime's JSON, parsed."""
        response = decode(self.call("PodSandboxStatus", data(1, sandbox_id) + varint(2, verbose)), STATUS_RESPONSE)
        if "info" in response["info"]:
            response["info"]["info"] = json.loads(response["info"]["info"])
        return response

    def stop_pod_sandbox(self, sandbox_id):
        self.call("StopPodSandbox", data(1, sandbox_id))

    def remove_pod_sandbox(self, sandbox_id):
        self.call("RemovePodSandbox", data(1, sandbox_id))

    def list_pod_sandbox(self, labels=None, state=None):
        """Sandboxes whose labels include `labels` (and in `state` when given)."""
        filter_ = mapping(3, labels) + (data(2, varint(1, state) or b"") if state is not None else b"")
        response = self.call("ListPodSandbox", data(1, filter_) if filter_ else b"")
        return decode(response, {1: ("items", [SANDBOX])})["items"]

    def create_container(self, sandbox_id, config, sandbox_config_):
        response = self.call("CreateContainer", data(1, sandbox_id) + data(2, config) + data(3, sandbox_config_))
        return decode(response, {1: ("id", "str")})["id"]

    def start_container(self, container_id):
        self.call("StartContainer", data(1, container_id))

    def container_status(self, container_id):
        return decode(self.call("ContainerStatus", data(1, container_id)), {1: ("status", CONTAINER_STATUS)})["status"]
