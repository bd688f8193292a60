"""Real services for the integrations' tests: an S3-compatible server (moto's, a process
of its own on loopback, one per module); the agent's app in the test process, shared by
a module's tests, is tests/tenancy's ``api_platform``."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.tenancy.conftest import Platform, api_platform
from tests.waiting import eventually

pytest.importorskip("boto3", reason="boto3 is not installed (pip install -e '.[test]')")
pytest.importorskip("moto", reason="moto is not installed (pip install -e '.[test]')")

__all__ = ["api_platform"]  # the agent's app in this process, shared by a module's tests

ACCESS_KEY, SECRET_KEY = "hyac-test-access", "hyac-test-secret-7f3a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(s3={"addressing_style": "path"}))

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def names(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def settings(self, bucket: str, **more: Any) -> dict[str, Any]:
        """What `hyac system integrations set storage` takes for ``bucket`` on this server."""
        return {"backend": "s3", "endpoint": self.endpoint, "bucket": bucket,
                "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "path_style": True, **more}


def _answers(endpoint: str) -> bool:
    try:
        httpx.get(endpoint, timeout=2)
        return True
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, as a process of its own."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                    "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: process.poll() is not None or _answers(endpoint), timeout=60)
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server did not start: {log.read_text()}")
        yield S3Server(endpoint, process)
    finally:
        process.kill()
        process.wait()


def configure(platform: Platform, kind: str, settings: dict[str, Any]) -> httpx.Response:
    with platform.owner() as client:
        return client.put(f"/v1/system/integrations/{kind}", json={"settings": settings})


def setting(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in view["settings"] if s["name"] == name)
