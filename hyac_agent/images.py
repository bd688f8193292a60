"""Runtime images for the docker backend, buildable offline.

``build_runtime_image`` builds ``runtimes/python/Dockerfile`` FROM a base image. Given
no base, it makes one without a registry: ``debootstrap --variant=minbase`` of Debian
(with its python3) into a cached tarball, imported as ``hyac/debian-base:SUITE``. Both
steps are skipped when their result already exists, so a second run is quick.

``build_family_image`` builds another runtime's image (runtime.toml's ``image``, e.g.
``hyac/java:17``) from its folder's Dockerfile FROM that same Debian base; such a
Dockerfile installs its interpreter with apt from Debian's mirror (the one network the
build needs, on the host's network), never from an image registry.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyac_common.errors import ImageBuildError
from hyac_common.paths import runtimes_dir

DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CACHE_DIR = Path(os.environ.get("HYAC_IMAGE_CACHE", "/var/cache/hyac"))
# Left out of the rootfs: documentation, caches and apt's lists (they only add size).
_PRUNE = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/cache/apt", "var/lib/apt/lists")


def base_image_name(suite: str = DEFAULT_SUITE) -> str:
    return f"hyac/debian-base:{suite}"


def _client() -> Any:
    import docker

    return docker.from_env(timeout=600)


def image_exists(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def debian_rootfs_tarball(
    suite: str = DEFAULT_SUITE, mirror: str | None = None, say: Callable[[str], None] = print
) -> Path:
    """A cached tarball of a minimal Debian with python3 (debootstrap, as root)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"debian-{suite}-python3.tar"
    if tarball.exists():
        return tarball
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageBuildError(
            "debootstrap is not installed: apt-get install debootstrap (or build with --base IMAGE)"
        )
    if os.geteuid() != 0:
        raise ImageBuildError("building a base image with debootstrap needs root")
    rootfs = CACHE_DIR / f"rootfs-{suite}.tmp"
    shutil.rmtree(rootfs, ignore_errors=True)
    say(f"debootstrap {suite} (minbase + python3) into {rootfs} …")
    command = [
        debootstrap, "--variant=minbase", "--include=python3", suite, str(rootfs),
        mirror or os.environ.get("HYAC_DEBIAN_MIRROR", DEFAULT_MIRROR),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(rootfs, ignore_errors=True)
        raise ImageBuildError(f"debootstrap failed: {result.stdout[-800:]}{result.stderr[-800:]}")
    for rel in _PRUNE:
        target = rootfs / rel
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    with tarfile.open(partial, "w") as archive:
        archive.add(rootfs, arcname=".")
    partial.replace(tarball)
    shutil.rmtree(rootfs, ignore_errors=True)
    return tarball


def ensure_debian_base(
    client: Any, suite: str = DEFAULT_SUITE, force: bool = False, say: Callable[[str], None] = print
) -> str:
    name = base_image_name(suite)
    if not force and image_exists(client, name):
        say(f"base image {name}: present")
        return name
    tarball = debian_rootfs_tarball(suite, say=say)
    say(f"importing {tarball} as {name} …")
    repository, tag = name.rsplit(":", 1)
    client.api.import_image(src=str(tarball), repository=repository, tag=tag)
    return name


def python_version_of(client: Any, image: str) -> str:
    output = client.containers.run(
        image, ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        remove=True, network_mode="none", user="1000:1000",
    )
    return output.decode().strip()


def _docker_build(client: Any, folder: Path, name: str, base: str, network: str = "") -> None:
    try:
        client.images.build(
            path=str(folder), dockerfile="Dockerfile", tag=name, buildargs={"BASE_IMAGE": base},
            rm=True, forcerm=True, pull=False, **({"network_mode": network} if network else {}),
        )
    except Exception as exc:
        raise ImageBuildError(f"docker build of {name} failed: {exc}") from None


def build_family_image(
    runtime_name: str, base: str | None = None, force: bool = False,
    say: Callable[[str], None] = print,
) -> str:
    """Build the image runtime.toml names for ``runtime_name`` (not Python's); returns its
    name. Checks that the image's interpreter answers as the manifest's version pattern
    expects, run as the workers run it (uid 1000, no network)."""
    from hyac_agent import runtimes

    runtime, manifest = runtimes.declared(runtime_name)
    if not runtime.image or not (runtime.folder / "Dockerfile").is_file():
        raise ImageBuildError(f"runtime {runtime_name} has no image to build (its runtime.toml "
                              "names none, or its folder has no Dockerfile)")
    client = _client()
    if base is None:
        base = ensure_debian_base(client, say=say)  # --force rebuilds this image, not the base
    name = runtime.image
    if not force and image_exists(client, name):
        say(f"runtime image {name}: present")
        return name
    say(f"building {name} FROM {base} (packages from Debian's mirror) …")
    _docker_build(client, runtime.folder, name, base, network="host")
    major = runtime.version.split(".")[0]
    interpreter = str(manifest["interpreter"]).format(version=runtime.version, major=major)
    output = client.containers.run(
        name, [interpreter, *manifest.get("version_args", ["--version"])], remove=True,
        network_mode="none", user="1000:1000",
    ).decode(errors="replace").strip()
    pattern = str(manifest.get("version_pattern", "")).format(
        version=re.escape(runtime.version), major=re.escape(major))
    if not re.search(pattern, output):
        raise ImageBuildError(f"{name} holds {output.splitlines()[0] if output else 'nothing'}, "
                              f"not {runtime_name}")
    say(f"runtime image {name}: built ({output.splitlines()[0]})")
    return name


def build_runtime_image(
    image_template: str = "hyac/python:{version}",
    base: str | None = None,
    python: str | None = None,
    force: bool = False,
    say: Callable[[str], None] = print,
) -> str:
    """Build the python runtime image; returns its name. Offline when ``base`` is None."""
    client = _client()
    if base is None:
        base = ensure_debian_base(client, force=force, say=say)
        version = python or python_version_of(client, base)
    else:
        version = python or base.split(":", 1)[-1].split("-", 1)[0]
    name = image_template.format(version=version)
    if not force and image_exists(client, name):
        say(f"runtime image {name}: present")
        return name
    say(f"building {name} FROM {base} …")
    _docker_build(client, runtimes_dir() / "python", name, base)
    actual = python_version_of(client, name)
    if actual != version:
        raise ImageBuildError(f"{name} holds Python {actual}, not {version}: pass --python {actual}")
    say(f"runtime image {name}: built (Python {actual})")
    return name
