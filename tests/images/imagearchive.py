"""Read a docker-archive image tarball (what hack/build-images.sh writes) the way a runtime does.

``ImageArchive.open`` checks what ``ctr images import`` and ``docker load`` rely on: one image in
``manifest.json``, its config, every layer present, and each layer's sha256 equal to the diff ID
the config names. ``unpack`` applies the layers in order (whiteouts included) into a directory.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


class ArchiveError(Exception):
    """The tarball is not a docker-archive a runtime would load; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageArchive:
    path: Path
    repo_tags: tuple[str, ...]
    config: dict[str, Any]
    layers: tuple[str, ...]  # member names, in order

    @classmethod
    def open(cls, path: Path) -> ImageArchive:
        with tarfile.open(path) as archive:
            manifest = json.load(member(archive, path, "manifest.json"))
            if not (isinstance(manifest, list) and len(manifest) == 1):
                raise ArchiveError(f"{path}: manifest.json: expected one image, got {manifest!r}")
            (entry,) = manifest
            config = json.load(member(archive, path, entry["Config"]))
            layers = tuple(entry["Layers"])
            diff_ids = config["rootfs"]["diff_ids"]
            if len(diff_ids) != len(layers):
                raise ArchiveError(f"{path}: {len(layers)} layers but {len(diff_ids)} diff_ids in the config")
            for name, diff_id in zip(layers, diff_ids, strict=True):
                digest = hashlib.sha256()
                data = member(archive, path, name)
                while chunk := data.read(CHUNK):
                    digest.update(chunk)
                if f"sha256:{digest.hexdigest()}" != diff_id:
                    raise ArchiveError(f"{path}: layer {name}: sha256 differs from the config's {diff_id}")
        return cls(path=path, repo_tags=tuple(entry["RepoTags"]), config=config, layers=layers)

    @property
    def settings(self) -> dict[str, Any]:
        """The image's run settings (User, Entrypoint, Cmd, Env...)."""
        return dict(self.config.get("config") or {})

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.settings.get("Env") or [])

    def paths(self, layer: int) -> list[str]:
        """The paths one layer (by index, -1 the top) adds or changes."""
        with (
            tarfile.open(self.path) as archive,
            tarfile.open(fileobj=member(archive, self.path, self.layers[layer])) as contents,
        ):
            return contents.getnames()

    def unpack(self, root: Path) -> Path:
        """The image's filesystem in ``root``, as a runtime's snapshotter would lay it out."""
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(self.path) as archive:
            for name in self.layers:
                with tarfile.open(fileobj=member(archive, self.path, name)) as layer:
                    names = layer.getnames()
                for whiteout in (n for n in names if Path(n).name.startswith(".wh.")):
                    remove(root / Path(whiteout).parent, Path(whiteout).name)
                # tar(1) rather than tarfile: device nodes, absolute symlinks and owners as-is.
                tar = subprocess.Popen(
                    ["tar", "-x", "-C", str(root), "--exclude=.wh.*", "--numeric-owner"],
                    stdin=subprocess.PIPE,
                )
                assert tar.stdin is not None
                try:
                    with tar.stdin:
                        shutil.copyfileobj(member(archive, self.path, name), tar.stdin, CHUNK)
                except BaseException:
                    tar.kill()  # not left running (nor to the GC) when the copy fails
                    tar.wait()
                    raise
                if tar.wait() != 0:
                    raise ArchiveError(f"{self.path}: layer {name}: tar exited {tar.returncode}")
        return root


def member(archive: tarfile.TarFile, path: Path, name: str) -> Any:
    try:
        data = archive.extractfile(name)
    except KeyError:
        data = None
    if data is None:
        raise ArchiveError(f"{path}: no file {name} in the archive")
    return data


def remove(directory: Path, whiteout: str) -> None:
    if whiteout == ".wh..wh..opq":
        for child in directory.iterdir():
            subprocess.run(["rm", "-rf", str(child)], check=True)
    else:
        subprocess.run(["rm", "-rf", str(directory / whiteout.removeprefix(".wh."))], check=True)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a shell file such as hack/images.env (comments and quotes allowed)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words:
            key, _, value = words[0].partition("=")
            values[key] = value
    return values
