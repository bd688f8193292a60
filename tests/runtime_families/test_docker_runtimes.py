"""The docker backend serves Python and java17 from their images: node and deno, which
have none, fail clearly, as does java17 while its image is not built."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyac_agent.sandbox.base import SandboxSettings
from hyac_agent.sandbox.docker import DockerBackend
from hyac_common.errors import InvalidInput


@pytest.mark.parametrize("name", ["node20", "deno"])
def test_docker_refuses_script_runtimes_with_the_way_out(name: str, tmp_path: Path) -> None:
    backend = DockerBackend(SandboxSettings(run_dir=tmp_path))
    with pytest.raises(InvalidInput, match="--sandbox bwrap"):
        backend.resolve_runtime(name)


def test_java_runs_from_its_image_or_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's own JDK: `java` on its PATH, nothing of the host's bound (the host's
    /etc/java-17-openjdk belongs to the host's JDK), the channel by path."""
    from docker.errors import ImageNotFound

    from hyac_agent.sandbox import docker

    class Engine:  # the engine's images, as the docker library answers for them
        def __init__(self, ids: dict[str, str]) -> None:
            self.ids = ids
            self.images = self

        def get(self, image: str) -> object:
            if image not in self.ids:
                raise ImageNotFound(f"No such image: {image}")
            return type("Image", (), {"id": self.ids[image]})()

    backend = DockerBackend(SandboxSettings(run_dir=tmp_path))
    # no JVM of the image to train with here: workers start without an archive
    backend._docker = Engine({"hyac/java:17": ""})
    monkeypatch.setattr(docker, "_image_present", lambda image: image == "hyac/java:17")
    runtime = backend.resolve_runtime("java17")
    assert (runtime.image, str(runtime.interpreter), runtime.host_paths) == ("hyac/java:17", "java", ())
    assert runtime.channel == "path" and runtime.sized_at_start
    assert "-Xmx256m" in runtime.command("/runtime", memory_bytes=512 * 1024 * 1024)
    refusal = ("runtime 'java17' has no image on this agent (hyac/java:17): build it with "
               "`hyac-agent images build --runtime java17`")
    # removed between the check and the look-up of its id: the same refusal, not a 500
    backend._docker = Engine({})
    with pytest.raises(InvalidInput) as refused:
        backend.resolve_runtime("java17")
    assert refused.value.message == refusal
    monkeypatch.setattr(docker, "_image_present", lambda image: False)
    with pytest.raises(InvalidInput) as refused:
        backend.resolve_runtime("java17")
    assert refused.value.message == refusal


def test_an_engine_that_refuses_the_container_is_sandbox_unavailable(tmp_path: Path) -> None:
    """Docker's own refusal (here: a memory limit under its 6 MB minimum) is a 503 with
    the engine's words, not an internal error."""
    import asyncio

    from hyac_agent.sandbox.base import SandboxSpec
    from hyac_agent.sandbox.limits import ResourceLimits
    from hyac_common.errors import SandboxUnavailable
    from tests.sandbox.conftest import backend_missing

    reason = backend_missing("docker")
    if reason:
        pytest.skip(f"SANDBOX BACKEND 'docker' NOT TESTED: {reason}")
    backend = DockerBackend(SandboxSettings(run_dir=tmp_path))
    runtime = backend.resolve_runtime("python3.11")
    spec = SandboxSpec(runtime=runtime, limits=ResourceLimits().with_memory(1024 * 1024))
    with pytest.raises(SandboxUnavailable, match="docker could not start the sandbox: .*[Mm]emory"):
        asyncio.run(backend.start(spec))
    assert not list((tmp_path / "sandboxes").iterdir()), "nothing is left behind"
