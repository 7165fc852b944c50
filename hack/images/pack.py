#!/usr/bin/env python3
"""Pack a root filesystem into a docker-archive image tarball, without a registry or a daemon.

hack/build-images.sh uses it for the pause and test images and for the stand-in base the webhook
image is built on. The output is what ``docker save`` writes (``manifest.json``, the image config,
one uncompressed ``layer.tar`` per layer), which ``ctr images import``, ``kind load image-archive``,
``docker load`` and ``buildah pull docker-archive:`` all read. Every entry is owned by root with a
fixed time, so the same inputs give the same bytes (and the same image ID).

    pack.py --out pause.tar --name registry.k8s.io/pause:3.10 --layer-dir ROOT \
        --entrypoint '["/pause"]' --user 65535:65535

Layers come in order: ``--layer-dir`` (a directory, tarred here) or ``--layer-tar`` (a tarball
used as it is, e.g. mmdebstrap's output).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

# A fixed time for every file and the image's creation (2000-01-01): reproducible, and not 0,
# which some tools show as "unknown".
EPOCH = 946684800
CREATED = "2000-01-01T00:00:00Z"
CHUNK = 1 << 20


class PackError(Exception):
    """The image cannot be packed; the message says which input and why."""


def tar_directory(root: Path, out: Path) -> None:
    """Write ``root``'s tree to ``out`` as a layer: sorted, root-owned, fixed times."""
    if not root.is_dir():
        raise PackError(f"--layer-dir {root}: not a directory")
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as layer:
        for path in sorted(walk(root)):
            relative = path.relative_to(root).as_posix()
            info = layer.gettarinfo(str(path), arcname=relative)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = EPOCH
            info.pax_headers = {}
            if info.isreg():
                with path.open("rb") as data:
                    layer.addfile(info, data)
            else:
                layer.addfile(info)


def walk(root: Path) -> list[Path]:
    """Every path under ``root`` (not ``root`` itself), symlinks not followed."""
    found: list[Path] = []
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory)
        found.extend(base / name for name in dirnames + filenames)
    return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_layer_tar(path: Path) -> None:
    """An uncompressed tar: containerd computes diff IDs over the bytes, so compression would lie."""
    with path.open("rb") as data:
        head = data.read(512)
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd" or head[:3] == b"BZh":
        raise PackError(f"--layer-tar {path}: compressed; give an uncompressed tar")
    if len(head) < 512 or head[257:262] != b"ustar":
        raise PackError(f"--layer-tar {path}: not a tar archive")


def image_config(args: argparse.Namespace, diff_ids: Sequence[str]) -> dict[str, object]:
    config: dict[str, object] = {
        "Env": args.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    }
    for key, value in (
        ("Entrypoint", args.entrypoint),
        ("Cmd", args.cmd),
        ("User", args.user),
        ("WorkingDir", args.workdir),
        ("StopSignal", args.stop_signal),
    ):
        if value is not None:
            config[key] = value
    if args.label:
        config["Labels"] = dict(label.split("=", 1) for label in args.label)
    return {
        "architecture": args.arch,
        "os": "linux",
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created": CREATED, "created_by": "hack/images/pack.py"} for _ in diff_ids],
    }


def add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = EPOCH
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def add_file(archive: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mtime = EPOCH
    info.mode = 0o644
    with path.open("rb") as data:
        archive.addfile(info, data)


def pack(args: argparse.Namespace) -> str:
    """Write the archive to ``args.out``; return the image ID (the config's digest)."""
    out: Path = args.out
    staged: list[Path] = []
    layers: list[Path] = []
    try:
        for kind, value in args.layers:
            if kind == "dir":
                layer = out.with_name(f".{out.name}.layer{len(layers)}.tar")
                tar_directory(Path(value), layer)
                staged.append(layer)
            else:
                layer = Path(value)
                if not layer.is_file():
                    raise PackError(f"--layer-tar {layer}: no such file")
                check_layer_tar(layer)
            layers.append(layer)
        if not layers:
            raise PackError("no layers: give --layer-dir or --layer-tar")
        diff_ids = [sha256_file(layer) for layer in layers]
        config = json.dumps(image_config(args, diff_ids), sort_keys=True, separators=(",", ":")).encode()
        image_id = hashlib.sha256(config).hexdigest()
        manifest = [
            {
                "Config": f"{image_id}.json",
                "RepoTags": args.name,
                "Layers": [f"{d}/layer.tar" for d in diff_ids],
            }
        ]
        partial = out.with_name(f".{out.name}.partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            for diff_id, layer in zip(diff_ids, layers, strict=True):
                add_file(archive, f"{diff_id}/layer.tar", layer)
            add_bytes(archive, f"{image_id}.json", config)
            add_bytes(archive, "manifest.json", json.dumps(manifest, indent=1).encode())
        partial.replace(out)
        return image_id
    finally:
        for path in staged:
            path.unlink(missing_ok=True)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="the docker-archive tarball to write")
    parser.add_argument(
        "--name", action="append", required=True, help="a full image name (repeat for aliases)"
    )
    parser.add_argument("--layer-dir", dest="layers", action="append", type=lambda v: ("dir", v), default=[])
    parser.add_argument("--layer-tar", dest="layers", action="append", type=lambda v: ("tar", v))
    parser.add_argument("--entrypoint", type=json.loads, help="JSON list")
    parser.add_argument("--cmd", type=json.loads, help="JSON list")
    parser.add_argument("--env", action="append", help="NAME=value (repeat); default a standard PATH")
    parser.add_argument("--user")
    parser.add_argument("--workdir")
    parser.add_argument("--stop-signal", help="e.g. SIGRTMIN+3 (systemd as PID 1)")
    parser.add_argument("--label", action="append", help="key=value (repeat)")
    parser.add_argument("--arch", default="amd64")
    args = parser.parse_args(argv)
    for name in args.name:
        if ":" not in name.rsplit("/", 1)[-1] or "/" not in name:
            parser.error(f"--name {name}: give a full name with a tag, e.g. docker.io/library/x:1")
    for option in ("entrypoint", "cmd"):
        value = getattr(args, option)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            parser.error(f"--{option}: expected a JSON list of strings, got {value!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        image_id = pack(args)
    except (PackError, OSError) as exc:
        print(f"pack.py: {args.out}: {exc}", file=sys.stderr)
        return 1
    print(f"sha256:{image_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
