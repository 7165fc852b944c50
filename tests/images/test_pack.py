"""hack/images/pack.py: reproducible docker-archives, and clear errors for bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from imagearchive import ImageArchive

PACK = Path(__file__).resolve().parents[2] / "hack" / "images" / "pack.py"


def pack(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PACK), *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tree = tmp_path / "root"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (tree / "bin" / "tool").chmod(0o755)
    (tree / "bin" / "alias").symlink_to("tool")
    return tree


def test_the_same_tree_packs_to_the_same_bytes_and_image_id(root: Path, tmp_path: Path) -> None:
    outputs = []
    for n in (1, 2):
        (root / "bin" / "tool").touch()  # a newer mtime must not matter
        done = pack("--out", tmp_path / f"{n}.tar", "--name", "example.org/a/b:1", "--layer-dir", root)
        assert done.returncode == 0, done.stderr
        outputs.append((done.stdout, (tmp_path / f"{n}.tar").read_bytes()))
    assert outputs[0] == outputs[1]
    assert ImageArchive.open(tmp_path / "1.tar").repo_tags == ("example.org/a/b:1",)
    # What it prints is the image ID: the digest of the config the manifest names.
    with tarfile.open(tmp_path / "1.tar") as archive:
        (entry,) = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = archive.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
    assert outputs[0][0] == f"sha256:{hashlib.sha256(config).hexdigest()}\n"
    assert entry["Config"] == f"{hashlib.sha256(config).hexdigest()}.json"


def test_the_archive_carries_the_run_settings(root: Path, tmp_path: Path) -> None:
    done = pack(
        "--out", tmp_path / "x.tar", "--name", "example.org/x:1", "--name", "example.org/x:latest",
        "--layer-dir", root, "--entrypoint", '["/bin/tool"]', "--cmd", '["a", "b"]',
        "--user", "65532:65532", "--env", "PATH=/bin", "--workdir", "/bin",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    archive = ImageArchive.open(tmp_path / "x.tar")
    assert archive.repo_tags == ("example.org/x:1", "example.org/x:latest")
    assert archive.settings == {
        "Entrypoint": ["/bin/tool"],
        "Cmd": ["a", "b"],
        "User": "65532:65532",
        "Env": ["PATH=/bin"],
        "WorkingDir": "/bin",
    }


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        pytest.param(["--name", "busybox:1"], "--name busybox:1: give a full name", id="short-name"),
        pytest.param(["--name", "example.org/x"], "--name example.org/x: give a full name", id="no-tag"),
        pytest.param(
            ["--name", "example.org/x:1", "--entrypoint", '"/bin/tool"'],
            "--entrypoint: expected a JSON list",
            id="entrypoint-string",
        ),
        pytest.param(
            ["--name", "example.org/x:1", "--cmd", "[1]"],
            "--cmd: expected a JSON list of strings",
            id="cmd-numbers",
        ),
    ],
)
def test_bad_arguments_are_named(root: Path, tmp_path: Path, args: list[str], problem: str) -> None:
    done = pack("--out", tmp_path / "x.tar", "--layer-dir", root, *args)
    assert done.returncode == 2
    assert problem in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.tar").exists()


def test_a_compressed_or_missing_layer_is_refused_naming_it(tmp_path: Path) -> None:
    compressed = tmp_path / "layer.tar.gz"
    compressed.write_bytes(gzip.compress(b"not really a tar"))
    cases = {
        compressed: "compressed; give an uncompressed tar",
        tmp_path / "absent.tar": "no such file",
        tmp_path / "x.txt": "not a tar archive",
    }
    (tmp_path / "x.txt").write_text("hello\n" * 200)
    for layer, problem in cases.items():
        done = pack("--out", tmp_path / "x.tar", "--name", "example.org/x:1", "--layer-tar", layer)
        assert done.returncode == 1
        assert done.stderr == f"pack.py: {tmp_path / 'x.tar'}: --layer-tar {layer}: {problem}\n"
        assert not (tmp_path / "x.tar").exists()
