#!/usr/bin/env python3
"""Writes a container image archive (the `docker save` layout containerd imports) from static
binaries: one layer holding a minimal root filesystem (/etc/passwd, /etc/group, /tmp) and the
given files, so that the real-node tier needs no registry.

usage: images.py OUT.tar TAG [--entrypoint PATH] FILE=PATH_IN_IMAGE...
"""
import hashlib
import io
import json
import sys
import tarfile


def add_bytes(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def layer(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = {"etc", "tmp", "var", "var/run"}
        for _, inside in files:
            parts = inside.strip("/").split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        for d in sorted(dirs):
            add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        add_bytes(tar, "etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n")
        add_bytes(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        add_bytes(tar, "etc/nsswitch.conf", b"hosts: files dns\n")
        for source, inside in files:
            info = tar.gettarinfo(source, inside.strip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755
            with open(source, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def main(argv):
    out, tag, rest = argv[1], argv[2], argv[3:]
    entrypoint = None
    files = []
    while rest:
        arg = rest.pop(0)
        if arg == "--entrypoint":
            entrypoint = [rest.pop(0)]
        else:
            source, inside = arg.split("=", 1)
            files.append((source, inside))
    data = layer(files)
    diff_id = hashlib.sha256(data).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Entrypoint": entrypoint, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
        "history": [{"created_by": "kubeadm-recover tests/realnode/images.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [diff_id + "/layer.tar"]}]
    with tarfile.open(out, mode="w") as tar:
        add_bytes(tar, config_name, config_bytes)
        add_dir(tar, diff_id)
        add_bytes(tar, diff_id + "/layer.tar", data)
        add_bytes(tar, "manifest.json", json.dumps(manifest).encode())


if __name__ == "__main__":
    main(sys.argv)
