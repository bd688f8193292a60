"""Real services for the integrations' tests: an S3-compatible server (moto's, a process
of its own on loopback, one per module); the agent's app in the test process, shared by
a module's tests, is tests/tenancy's ``api_platform``."""

from __future__ import annotations

import json
import os
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

#: requests moto serves before it checks every request's signature: the three that make
#: the IAM user whose key the tests use
UNSIGNED_SETUP = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    """moto's S3 server; it checks signatures, so only ``access_key``/``secret_key`` work."""

    endpoint: str
    process: subprocess.Popen[bytes]
    access_key: str = ""
    secret_key: str = ""

    def client(self, service: str = "s3") -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key or "setup",
                            aws_secret_access_key=self.secret_key or "setup",
                            config=Config(s3={"addressing_style": "path"}))

    def make_key(self) -> None:
        """An IAM user allowed every S3 action, and its key (moto's last unsigned requests)."""
        iam = self.client("iam")
        iam.create_user(UserName="hyac")
        iam.put_user_policy(UserName="hyac", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="hyac")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def names(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def settings(self, bucket: str, **more: Any) -> dict[str, Any]:
        """What `hyac system integrations set storage` takes for ``bucket`` on this server."""
        return {"backend": "s3", "endpoint": self.endpoint, "bucket": bucket,
                "access_key": self.access_key, "secret_key": self.secret_key, "path_style": True,
                **more}


def _listens(port: int) -> bool:
    """Whether the server takes connections (a request would use up an unsigned one)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, as a process of its own, checking every
    request's credentials once the tests' key is made."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(UNSIGNED_SETUP)}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                    "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                   env=env)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: process.poll() is not None or _listens(port), timeout=60)
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server did not start: {log.read_text()}")
        server = S3Server(endpoint, process)
        server.make_key()
        yield server
    finally:
        process.kill()
        process.wait()


def configure(platform: Platform, kind: str, settings: dict[str, Any]) -> httpx.Response:
    with platform.owner() as client:
        return client.put(f"/v1/system/integrations/{kind}", json={"settings": settings})


def setting(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in view["settings"] if s["name"] == name)
