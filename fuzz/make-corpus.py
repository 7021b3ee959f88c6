#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/TARGET/).

Run from the repository root: /usr/bin/python3 fuzz/make-corpus.py. The
seeds are small, committed, and regenerated identically (fixed mtimes).
"""
import hashlib
import io
import json
import os
import tarfile

# No 10 KiB record padding: the seeds stay small.
tarfile.RECORDSIZE = tarfile.BLOCKSIZE

OUT = "fuzz/corpus"


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def tar(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (name, kind, payload, extra) tuples; kind is file, dir,
    symlink, link, fifo, char."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, payload, extra in entries:
            i = tarfile.TarInfo(name)
            i.mtime = 1700000000
            i.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                i.size = len(data)
            elif kind == "dir":
                i.type = tarfile.DIRTYPE
            elif kind == "symlink":
                i.type, i.linkname = tarfile.SYMTYPE, payload
            elif kind == "link":
                i.type, i.linkname = tarfile.LNKTYPE, payload
            elif kind == "fifo":
                i.type = tarfile.FIFOTYPE
            elif kind == "char":
                i.type, i.devmajor, i.devminor = tarfile.CHRTYPE, 1, 3
            if extra:
                i.pax_headers = extra
            t.addfile(i, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def unpack():
    write("unpack", "basic", tar([
        ("etc", "dir", None, None),
        ("etc/hostname", "file", "pod\n", None),
        ("bin", "dir", None, None),
        ("bin/sh", "file", "#!x\n", None),
        ("bin/ash", "link", "bin/sh", None),
        ("usr", "symlink", ".", None),
        ("dev", "dir", None, None),
        ("dev/null", "char", None, None),
        ("run", "dir", None, None),
        ("run/fifo", "fifo", None, None),
    ]))
    write("unpack", "whiteouts", tar([
        ("a", "dir", None, None),
        ("a/x", "file", "x", None),
        ("a/.wh.x", "file", "", None),
        ("b", "dir", None, None),
        ("b/.wh..wh..opq", "file", "", None),
        ("b/y", "file", "y", None),
    ]))
    write("unpack", "escapes", tar([
        ("evil", "symlink", "/", None),
        ("evil/etc/x", "file", "through an absolute symlink", None),
        ("up", "symlink", "../../..", None),
        ("up/sentinel", "file", "through a climbing symlink", None),
        ("../sentinel", "file", "dot-dot", None),
        ("/abs", "file", "absolute", None),
        ("hl", "link", "/etc/passwd", None),
    ]))
    write("unpack", "pax", tar([
        ("d", "dir", None, {"SCHILY.xattr.user.k": "v"}),
        ("d/" + "n" * 150, "file", "long name", {"SCHILY.xattr.trusted.overlay.opaque": "y"}),
        ("d/l", "symlink", "t" * 120, None),
    ], fmt=tarfile.PAX_FORMAT))
    write("unpack", "replace", tar([
        ("x", "file", "1", None),
        ("x", "dir", None, None),
        ("x/y", "file", "2", None),
        ("x", "symlink", "y", None),
        (".", "dir", None, None),
    ]))


def reference():
    for i, r in enumerate([
        "busybox",
        "docker.io/library/busybox:1.36",
        "127.0.0.1:5000/team/app:v1.2-rc_3",
        "ghcr.io/a/b/c@sha256:" + "ab" * 32,
        "registry.example:443/x:y@sha256:" + "0" * 64,
        "localhost/x",
        "UPPER/case",
        "a:b:c",
    ]):
        write("reference", f"r{i}", r)


SPEC_BASIC = """name: demo
defaults:
  image: busybox
  memory: 64m
networks:
  front:
    subnet: 198.18.40.0/24
pods:
  web:
    command: [httpd, -f, -p, "8080"]
    ports: ["127.0.0.1:18080:8080"]
    networks: [front]
    restart: on-failure:3
    env: {A: "1"}
    volumes: ["./data:/data:ro"]
  worker:
    image: busybox:1.36
    depends_on: [web]
"""

SPEC_SERVICES = """name: svc
pods:
  dev:
    image: busybox
    services:
      api:
        command: sleep 100
        health:
          command: "true"
          interval: 1s
      ui:
        command: sleep 100
        depends_on: [api]
"""


def spec():
    for b in ("devpod", "webdb"):
        with open(f"bundles/{b}/gvpod.yaml") as f:
            write("spec", f"bundle-{b}", f.read())
    write("spec", "basic", SPEC_BASIC)
    write("spec", "services", SPEC_SERVICES)
    write("spec", "merge", SPEC_BASIC + "\n--- next file ---\n"
          + "pods:\n  web:\n    memory: 1g\n    ports: []\n")
    write("spec", "anchors", "name: &n x\npods:\n  a: &p {image: busybox}\n  b: *p\n")
    write("spec", "bad", "name: [\npods: {a: 1\n")


def options():
    for i, o in enumerate([
        "8080", "18080:80", "127.0.0.1:18080:80/udp", "0.0.0.0::53/udp",
        "/tmp:/data:ro", "/:/x", "/tmp:/a/../b",
        "256m", "1.5g", "6m", "0", "1e400t",
        "no", "always", "on-failure:3", "unless-stopped:2",
        "auto", "127.0.0.1:30001", "198.18.0.1:auto",
        "10m", "198.18.0.0/15", "198.18.0.1/24", "0.0.0.0/0",
    ]):
        write("options", f"o{i:02}", o)


def snapshot():
    """Flag byte 0 (the target compresses the rest), then a tar that
    `gvpod snapshot import` accepts, or one damaged on purpose."""
    meta = {
        "format": 1, "id": "0" * 32, "name": "seed", "created": "2026-01-01T00:00:00Z",
        "pod": {"id": "p" * 64, "name": "web", "hostname": "web", "auto_remove": False},
        "image": {"id": "sha256:00", "reference": "busybox"},
        "runsc": {"version": "runsc version seed", "release": 20221219,
                  "platform": "ptrace", "network": "none", "overlay2": "none"},
        "network": {"mode": "none"},
        "options": {"cmd": ["sh"], "env": [], "volumes": [], "read_only": False,
                    "network": "none", "runsc_flags": [], "tty": False,
                    "interactive": False},
        "process": {}, "leave_running": False, "memory_image_bytes": 4,
        "rootfs_diff_bytes": 0, "checkpoint_ms": 1,
    }
    members = [
        ("snapshot.json", json.dumps(meta).encode()),
        ("config.json", b'{"ociVersion":"1.0.2"}'),
        ("rootfs-diff.tar", tar([("f", "file", "x", None)])),
        ("checkpoint.img", b"IMG\n"),
    ]
    sums = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in members)
    good = members + [("SHA256SUMS", sums.encode())]
    write("snapshot", "good", b"\0" + tar([(n, "file", d, None) for n, d in good]))
    bad_sum = members + [("SHA256SUMS", sums.replace(sums[0], "f" if sums[0] != "f" else "e", 1).encode())]
    write("snapshot", "bad-sum", b"\0" + tar([(n, "file", d, None) for n, d in bad_sum]))
    write("snapshot", "no-sums", b"\0" + tar([(n, "file", d, None) for n, d in members]))
    write("snapshot", "symlink", b"\0" + tar([("snapshot.json", "symlink", "/etc/passwd", None)]))
    write("snapshot", "raw", b"\1" + bytes([0x28, 0xB5, 0x2F, 0xFD]) + b"\0" * 8)


unpack()
reference()
spec()
options()
snapshot()
