"""The images hack/build-images.sh builds: names, integrity, and what runs inside them.

The session builds them first with hack/build-images.sh, or reads them from
$PODPRESET_IMAGES_DIR. The build is cached by input hash, so with nothing changed this module
takes seconds and `make test` collects it; a cold build (mmdebstrap, pip, buildah) takes a few
minutes, once, and `make e2e-cluster` then reuses it. Running things inside the images uses
chroot, mount namespaces and a private containerd, so those tests need root (as CI has).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
import yaml
from imagearchive import ImageArchive, read_env_file

TOP = Path(__file__).resolve().parents[2]
ENV = read_env_file(TOP / "hack" / "images.env")
IMAGES = {
    "pause": (ENV["PAUSE_TARBALL"], [ENV["PAUSE_IMAGE"], *ENV["PAUSE_ALIASES"].split()]),
    "testbox": (ENV["TESTBOX_TARBALL"], [ENV["TESTBOX_IMAGE"]]),
    "webhook": (ENV["WEBHOOK_TARBALL"], [ENV["WEBHOOK_IMAGE"]]),
}
WAIT = 30.0  # seconds a process gets to do what the test waits for; never reached when it works

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mount namespaces)")


@pytest.fixture(scope="session")
def images_dir() -> Path:
    given = os.environ.get("PODPRESET_IMAGES_DIR")
    if given:
        return Path(given)
    built = subprocess.run([str(TOP / "hack" / "build-images.sh")], capture_output=True, text=True)
    assert built.returncode == 0, f"hack/build-images.sh failed:\n{built.stderr}"
    return Path(built.stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def archives(images_dir: Path) -> dict[str, ImageArchive]:
    return {image: ImageArchive.open(images_dir / tarball) for image, (tarball, _) in IMAGES.items()}


@pytest.fixture(scope="session")
def roots(archives: dict[str, ImageArchive]) -> Iterator[dict[str, Path]]:
    """Each image's filesystem, unpacked on first use; in memory (/dev/shm) where there is one,
    as the webhook's is some 10,000 files."""
    scratch = Path(
        tempfile.mkdtemp(prefix="podpreset-images-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    )

    class Roots(dict[str, Path]):
        def __missing__(self, image: str) -> Path:
            self[image] = archives[image].unpack(scratch / image)
            return self[image]

    yield Roots()
    subprocess.run(["rm", "-rf", "--one-file-system", str(scratch)], check=True)


def full_name(name: str) -> bool:
    """A name the CRI uses as it is: registry host (with a dot or localhost), path, tag."""
    host, slash, rest = name.partition("/")
    return bool(slash) and ("." in host or host == "localhost") and ":" in rest.rsplit("/", 1)[-1]


@pytest.mark.parametrize("image", IMAGES)
def test_each_tarball_is_one_image_under_its_full_names(
    archives: dict[str, ImageArchive], image: str
) -> None:
    _, names = IMAGES[image]
    archive = archives[image]
    assert list(archive.repo_tags) == names
    assert all(full_name(name) for name in names)
    assert archive.config["os"] == "linux"
    assert archive.config["architecture"] == "amd64"


def test_pause_is_also_named_as_containerd_default_sandbox_image(archives: dict[str, ImageArchive]) -> None:
    # containerd 1.6's CRI defaults sandbox_image to registry.k8s.io/pause:3.6.
    assert "registry.k8s.io/pause:3.6" in archives["pause"].repo_tags


def test_webhook_is_named_as_deploy_asks_for_it(archives: dict[str, ImageArchive]) -> None:
    deployment = yaml.safe_load((TOP / "deploy/base/deployment.yaml").read_text())
    kustomization = yaml.safe_load((TOP / "deploy/base/kustomization.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (rename,) = [i for i in kustomization["images"] if i["name"] == container["image"]]
    asked = f"{rename['newName']}:{rename['newTag']}"
    # What the kubelet pulls for a name without a registry or path.
    normalized = f"docker.io/library/{asked}" if "/" not in asked else f"docker.io/{asked}"
    assert archives["webhook"].repo_tags == (normalized,)
    assert container["imagePullPolicy"] == "IfNotPresent"  # so the imported image is used


def program_headers(binary: bytes) -> list[int]:
    """The p_type of each program header of a 64-bit little-endian ELF file."""
    assert binary[:4] == b"\x7fELF" and binary[4] == 2 and binary[5] == 1, "not a 64-bit LE ELF file"
    (phoff,) = struct.unpack_from("<Q", binary, 32)
    phentsize, phnum = struct.unpack_from("<HH", binary, 54)
    return [struct.unpack_from("<I", binary, phoff + i * phentsize)[0] for i in range(phnum)]


PT_DYNAMIC, PT_INTERP, ET_EXEC = 2, 3, 2


def test_pause_is_a_static_binary_and_the_whole_image(
    archives: dict[str, ImageArchive], roots: dict[str, Path]
) -> None:
    root = roots["pause"]
    assert archives["pause"].settings["Entrypoint"] == ["/pause"]
    assert sorted(p.name for p in root.iterdir()) == ["pause"]
    binary = (root / "pause").read_bytes()
    headers = program_headers(binary)
    assert struct.unpack_from("<H", binary, 16)[0] == ET_EXEC
    assert PT_INTERP not in headers, "pause asks for a dynamic loader"
    assert PT_DYNAMIC not in headers, "pause has a dynamic section"


def signal_caught(pid: int, signo: int) -> bool:
    """The process has installed a handler for the signal (SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signo - 1) & 1)
    return False


def wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_pause_exits_zero_on(roots: dict[str, Path], signo: signal.Signals) -> None:
    process = subprocess.Popen([str(roots["pause"] / "pause")], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: signal_caught(process.pid, signo), f"pause handles {signo.name}")
        assert process.poll() is None, "pause exited on its own"
        process.send_signal(signo)
        assert process.wait(timeout=WAIT) == 0
    finally:
        process.kill()
        process.wait()


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of each process whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append((int(stat.parent.name), fields[0]))
    return found


@needs_root
@pytest.mark.skipif(
    not shutil.which("unshare") or not shutil.which("nsenter"), reason="needs unshare, nsenter"
)
def test_pause_as_pid_1_reaps_the_orphans_it_inherits(roots: dict[str, Path], tmp_path: Path) -> None:
    # pause is PID 1 of a new PID namespace (as in a pod sandbox); a shell entered into that
    # namespace starts a child and exits, so the child is re-parented to pause; when the child
    # exits it must be reaped, not left a zombie.
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", str(roots["pause"] / "pause")])
    try:
        wait_for(lambda: children(outer.pid), "unshare starts pause")
        ((pause_pid, _),) = children(outer.pid)
        wait_for(lambda: signal_caught(pause_pid, signal.SIGCHLD), "pause handles SIGCHLD")
        release = tmp_path / "release"
        subprocess.run(
            ["nsenter", f"--target={pause_pid}", "--pid", "--", "sh", "-c",
             f"sh -c 'while [ ! -e {release} ]; do sleep 0.01; done' & exit 0"],
            check=True,
        )  # fmt: skip
        wait_for(lambda: children(pause_pid), "the orphan is re-parented to pause")
        ((orphan, state),) = children(pause_pid)
        assert state != "Z"
        release.touch()
        # Reaped: gone from the process table, not a zombie child of pause.
        wait_for(lambda: not Path(f"/proc/{orphan}").exists(), f"orphan {orphan} is reaped")
        assert children(pause_pid) == []
        # As PID 1 of its namespace pause gets SIGTERM only because it handles it.
        os.kill(pause_pid, signal.SIGTERM)
        assert outer.wait(timeout=WAIT) == 0
    finally:
        outer.kill()
        outer.wait()


@needs_root
def test_testbox_runs_a_shell_and_the_usual_applets(
    archives: dict[str, ImageArchive], roots: dict[str, Path]
) -> None:
    box = archives["testbox"]
    assert box.settings["Cmd"] == ["sh"]
    script = (
        "echo shell:$0; env | sort; cat /etc/passwd; ls /tmp; sleep 0; wget --help 2>&1 | head -n 1; id -u"
    )
    ran = subprocess.run(
        ["chroot", str(roots["testbox"]), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in box.env.items()),
         "sh", "-c", script],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "shell:sh"
    assert "PATH=/bin:/usr/bin" in lines
    assert "root:x:0:0:root:/root:/bin/sh" in lines
    assert any(line.startswith("BusyBox") for line in lines)  # wget's usage
    assert lines[-1] == "0"
    assert (roots["testbox"] / "tmp").stat().st_mode & 0o7777 == 0o1777


def test_webhook_runs_as_the_deployment_non_root_user_with_serve_as_its_command(
    archives: dict[str, ImageArchive],
) -> None:
    settings = archives["webhook"].settings
    pod = yaml.safe_load((TOP / "deploy/base/deployment.yaml").read_text())["spec"]["template"]["spec"]
    uid, gid = (int(part) for part in settings["User"].split(":"))
    assert uid != 0 and gid != 0
    assert (uid, gid) == (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"])
    assert settings["Entrypoint"] == ["/opt/podpreset/bin/podpreset"]
    assert settings["Cmd"][0] == "serve"
    (container,) = pod["containers"]
    assert container["args"][0] == "serve"  # the Deployment's args replace Cmd, not the entrypoint
    assert {"8443/tcp", "8080/tcp"} <= set(settings["ExposedPorts"])
    assert archives["webhook"].env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_webhook_adds_one_layer_on_its_base_holding_only_the_virtualenv(
    archives: dict[str, ImageArchive],
) -> None:
    # The build stage (sources, pip, the host's CA bundle mounted for pip) stays out of the image.
    webhook = archives["webhook"]
    assert len(webhook.layers) == 2  # the stand-in base is one layer (pack.py)
    added = {path.removeprefix("./").rstrip("/") for path in webhook.paths(-1)}
    assert added - {"opt"} and all(path == "opt" or path.startswith("opt/podpreset") for path in added)
    assert "opt/podpreset/bin/podpreset" in added


def test_webhook_has_bytecode_for_every_module_so_a_read_only_root_costs_nothing(
    roots: dict[str, Path],
) -> None:
    site = roots["webhook"] / "opt/podpreset/lib"
    sources = list(site.rglob("*.py"))
    assert len(sources) > 1000  # the kubernetes client alone has more
    missing = [
        source
        for source in sources
        if not (source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc").exists()
    ]
    assert missing == []
    assert not list(site.rglob("pip/__init__.py")), "pip left in the image"


@needs_root
@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare")
def test_webhook_serve_help_runs_as_its_user_on_a_read_only_root(
    archives: dict[str, ImageArchive], roots: dict[str, Path]
) -> None:
    image = archives["webhook"]
    root = roots["webhook"]
    user = image.settings["User"]
    command = [*image.settings["Entrypoint"], "serve", "--help"]
    env = [f"{k}={v}" for k, v in image.env.items()]
    # A private mount namespace: the root bound read-only onto itself, then chroot as the image's user.
    ran = subprocess.run(
        ["unshare", "--mount", "--propagation=private", "sh", "-ec",
         'mount --bind "$1" "$1"; mount -o remount,bind,ro "$1"; shift; exec chroot "$@"', "sh",
         str(root), f"--userspec={user}", str(root), "/usr/bin/env", "-i", *env, *command],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage: podpreset serve")
    assert "--tls-cert" in ran.stdout
    assert ran.stderr == ""


CONTAINERD_CONFIG = """\
version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{dir}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"""


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[list[str]]:
    """A private containerd (its own root, state and socket; no CRI): the ctr command to reach it."""
    for tool in ("containerd", "ctr", "runc"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool} (Debian packages containerd, runc)")
    (tmp_path / "config.toml").write_text(CONTAINERD_CONFIG.format(dir=tmp_path))
    with (tmp_path / "containerd.log").open("wb") as log:
        daemon = subprocess.Popen(
            ["containerd", "--config", str(tmp_path / "config.toml")], stdout=log, stderr=log
        )
    ctr = ["ctr", "--address", str(tmp_path / "containerd.sock"), "--namespace", "podpreset-images-test"]
    try:
        version = [*ctr, "version"]
        wait_for(lambda: subprocess.run(version, capture_output=True).returncode == 0 or daemon.poll(), "ctr")
        assert daemon.poll() is None, (tmp_path / "containerd.log").read_text()
        yield ctr
    finally:
        daemon.terminate()
        daemon.wait(timeout=WAIT)
        subprocess.run(["umount", "--recursive", "--quiet", str(tmp_path / "root")], capture_output=True)


@needs_root
def test_containerd_imports_the_packed_images_and_runs_them(
    images_dir: Path, containerd: list[str], tmp_path: Path
) -> None:
    # pack.py writes the pause and testbox archives itself (buildah writes the webhook's): the
    # runtime the cluster uses must import, unpack and run them.
    for image in ("pause", "testbox"):
        tarball, names = IMAGES[image]
        imported = subprocess.run(
            [*containerd, "images", "import", str(images_dir / tarball)], capture_output=True, text=True
        )
        assert imported.returncode == 0, imported.stderr
        assert [f"unpacking {name} " in imported.stdout for name in names] == [True] * len(names)
    private = [f"--fifo-dir={tmp_path / 'fifo'}", f"--runc-root={tmp_path / 'runc'}"]
    ran = subprocess.run(
        [*containerd, "run", "--rm", *private, ENV["TESTBOX_IMAGE"], "box", "sh", "-c", "echo hi from $0"],
        capture_output=True,
        text=True,
    )
    assert (ran.returncode, ran.stdout) == (0, "hi from sh\n"), ran.stderr
    # A sandbox's life: pause runs as the image's user until it gets SIGTERM, then exits 0.
    sandbox = subprocess.Popen([*containerd, "run", "--rm", *private, ENV["PAUSE_IMAGE"], "sandbox"])
    try:

        def running_pid() -> int | None:
            listed = subprocess.run([*containerd, "tasks", "list"], capture_output=True, text=True).stdout
            rows = [row.split() for row in listed.splitlines()[1:]]
            return next((int(row[1]) for row in rows if row[0] == "sandbox" and row[2] == "RUNNING"), None)

        wait_for(running_pid, "the sandbox runs")
        pid = running_pid()
        assert pid is not None
        ids = [
            line.split()[1:]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line[:4] in ("Uid:", "Gid:")
        ]
        assert ids == [["65535"] * 4, ["65535"] * 4]
        wait_for(lambda: signal_caught(pid, signal.SIGTERM), "pause handles SIGTERM")
        subprocess.run([*containerd, "tasks", "kill", "--signal", "SIGTERM", "sandbox"], check=True)
        assert sandbox.wait(timeout=WAIT) == 0
    finally:
        sandbox.kill()
        sandbox.wait()
        subprocess.run([*containerd, "tasks", "delete", "--force", "sandbox"], capture_output=True)
        subprocess.run([*containerd, "containers", "delete", "sandbox"], capture_output=True)


MOUNT_AND_CHROOT = """
root=$1 tls=$2 presets=$3; shift 3
# Mount points, as a runtime makes them before it makes the root read-only.
mkdir -p "$root/etc/podpreset/tls" "$root/etc/podpreset/presets" "$root/tmp" "$root/dev/shm"
mount --bind "$root" "$root"
mount --bind -o ro "$tls" "$root/etc/podpreset/tls"
mount --bind -o ro "$presets" "$root/etc/podpreset/presets"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mount -o remount,bind,ro "$root"
exec chroot "$@"
"""


@needs_root
@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare")
def test_webhook_serves_reviews_with_deploy_args_as_its_user_on_a_read_only_root(
    archives: dict[str, ImageArchive], roots: dict[str, Path], tmp_path: Path
) -> None:
    # What the Deployment runs, short of a cluster: its args and env, the image's user, a read-only
    # root with emptyDirs on /tmp and /dev/shm; presets from files instead of the API.
    image = archives["webhook"]
    pod = yaml.safe_load((TOP / "deploy/base/deployment.yaml").read_text())["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port, health_port = _free_port(), _free_port()
    bound = {"--bind=": f"127.0.0.1:{port}", "--health-bind=": f"127.0.0.1:{health_port}"}
    args = [next((f + v for f, v in bound.items() if a.startswith(f)), a) for a in container["args"]]
    assert sum(a.startswith(tuple(bound)) for a in args) == 2, container["args"]
    env = {**image.env, **{item["name"]: item["value"] for item in container["env"]}}
    ca = trustme.CA()
    tls = tmp_path / "tls"
    tls.mkdir(mode=0o755)
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(tls / "tls.crt"))
    leaf.private_key_pem.write_to_path(str(tls / "tls.key"))
    for path in (tls, tls / "tls.crt", tls / "tls.key"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the image's user reads them, as from a Secret
    context = ssl.create_default_context()
    ca.configure_trust(context)
    command = [*image.settings["Entrypoint"], *args, "-f", "/etc/podpreset/presets", "--workers=1"]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            ["unshare", "--mount", "--propagation=private", "sh", "-ec", MOUNT_AND_CHROOT, "sh",
             str(roots["webhook"]), str(tls), str(TOP / "deploy/examples"),
             f"--userspec={image.settings['User']}", str(roots["webhook"]),
             "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), *command],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def request(method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=WAIT)
        try:
            connection.request(method, path, body, {"Content-Type": "application/json"})
            # Closed even if reading fails: on "Connection: close" the response owns the socket.
            with connection.getresponse() as response:
                return response.status, response.read()
        finally:
            connection.close()

    def ready() -> bool:
        assert server.poll() is None, f"serve exited {server.returncode}:\n{log.read_text()}"
        connection = http.client.HTTPConnection("127.0.0.1", health_port, timeout=WAIT)
        try:
            connection.request("GET", "/readyz")
            with connection.getresponse() as response:
                response.read()
                return response.status == 200
        except OSError:
            return False
        finally:
            connection.close()

    try:
        wait_for(ready, "serve answers /readyz")
        status, body = request("POST", "/mutate", (TOP / "deploy/examples/pods/review.json").read_bytes())
        assert status == 200, body
        response = json.loads(body)["response"]
        assert response["allowed"] is True
        # The same patch as the podpreset under test on the host computes.
        expected = subprocess.run(
            [str(Path(sys.executable).parent / "podpreset"), "review", "-f", str(TOP / "deploy/examples"),
             str(TOP / "deploy/examples/pods/review.json")],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        patch = json.loads(base64.b64decode(response["patch"]))
        assert patch == json.loads(base64.b64decode(json.loads(expected)["response"]["patch"]))
        assert any(op["path"].startswith("/spec/containers/0/env") for op in patch), patch
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=WAIT) == 0, log.read_text()
    finally:
        server.kill()
        server.wait()
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines), "PODPRESET_LOG_FORMAT=json not honoured"
    assert not [line for line in lines if '"levelname": "ERROR"' in line or "Traceback" in line], lines


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
