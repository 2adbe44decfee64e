# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""OCI images for the containerd suite, built here with the standard library.

There is no image registry on a test machine: the suite writes OCI image
layout archives (``oci-layout``, ``index.json`` and ``blobs/sha256/...`` in one
tar) and imports them with ``ctr images import``. Two images, both of one
uncompressed layer holding Debian's static busybox:

* ``PAUSE``: the sandbox image (CRI ``sandbox_image``). Its entry point is
  ``busybox sleep``: a static process that does nothing but hold the pod's
  namespaces, which is all a pause process does (containerd stops a sandbox
  with SIGKILL, so it needs no signal handling).
* ``BUSYBOX``: busybox with its applets linked, for containers in a pod.

The archives are reproducible: same busybox, same bytes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

BUSYBOX_BIN = "/bin/busybox"
PAUSE = "podnet.test/pause:1"
BUSYBOX = "podnet.test/busybox:1"
APPLETS = ("sh", "sleep", "nc", "ping", "ip", "cat", "echo", "ls", "wget", "hostname", "true")
# Fixed time of every file and of the image configuration (reproducible archives).
MTIME = 946684800  # 2000-01-01
CREATED = "2000-01-01T00:00:00Z"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _info(name, kind=tarfile.REGTYPE, mode=0o755, size=0, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
    return info


def layer(applets=(), busybox=BUSYBOX_BIN):
    """An uncompressed layer: /bin/busybox, links for the applets, empty system directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "dev", "etc", "proc", "sys", "tmp", "run", "var"):
            tar.addfile(_info(directory + "/", tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755))
        with open(busybox, "rb") as handle:
            data = handle.read()
        tar.addfile(_info("bin/busybox", size=len(data)), io.BytesIO(data))
        for applet in applets:
            tar.addfile(_info("bin/" + applet, tarfile.SYMTYPE, 0o777, link="busybox"))
    return buf.getvalue()


def _blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def archive(path, name, entrypoint, applets=(), busybox=BUSYBOX_BIN):
    """Write an OCI image layout tar of one image named `name`; return the manifest digest."""
    layer_data = layer(applets, busybox)
    config = {
        "created": CREATED, "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": list(entrypoint), "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [_blob(layer_data)]},
        "history": [{"created": CREATED, "created_by": "podnet.mesh tests/containerd/images.py"}],
    }
    config_data = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": _blob(config_data), "size": len(config_data)},
        "layers": [{"mediaType": LAYER_TYPE, "digest": _blob(layer_data), "size": len(layer_data)}],
    }
    manifest_data = json.dumps(manifest, sort_keys=True).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": MANIFEST_TYPE, "digest": _blob(manifest_data), "size": len(manifest_data),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
    }]}
    files = [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
             ("index.json", json.dumps(index, sort_keys=True).encode())]
    files += [("blobs/sha256/" + _blob(data)[7:], data) for data in (layer_data, config_data, manifest_data)]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs/", "blobs/sha256/"):
            tar.addfile(_info(directory, tarfile.DIRTYPE))
        for member, data in files:
            tar.addfile(_info(member, mode=0o644, size=len(data)), io.BytesIO(data))
    return _blob(manifest_data)


def build(directory, busybox=BUSYBOX_BIN):
    """Write the pause and busybox archives into `directory`; return {image name: archive path}."""
    if not os.access(busybox, os.X_OK):
        raise FileNotFoundError("%s is missing: the images need a static busybox (apt-get install busybox-static)"
                                % busybox)
    made = {}
    for name, entrypoint, applets in ((PAUSE, ["/bin/busybox", "sleep", "2147483647"], ()),
                                      (BUSYBOX, ["/bin/sh"], APPLETS)):
        path = os.path.join(directory, name.replace("/", "_").replace(":", "_") + ".tar")
        archive(path, name, entrypoint, applets, busybox)
        made[name] = path
    return made
