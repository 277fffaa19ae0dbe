"""A real S3 API on 127.0.0.1 for the tests: moto's server in a subprocess, with one bucket.

    with S3Server() as s3:
        s3.url       # http://127.0.0.1:PORT, for `dvc remote modify ... endpointurl`
        s3.env       # AWS_* variables the DVC remote reads its credentials from
        s3.bucket    # an empty bucket

Nothing in it touches the network beyond the loopback interface.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

START_TIMEOUT_S = 30


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    """moto_server on a free port for the length of a `with` block; the bucket is created on entry."""

    def __init__(self, bucket="fmnist-test"):
        self.bucket = bucket
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # moto accepts any credentials; these are fake and exist only for this server.
        self.env = {
            "AWS_ACCESS_KEY_ID": "fmnist-test-key-id",
            "AWS_SECRET_ACCESS_KEY": "fmnist-test-secret-key",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **self.env},
        )
        try:
            self._wait_until_up()
            self._create_bucket()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_up(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not answer on {self.url} within {START_TIMEOUT_S} s") from None
                time.sleep(0.2)

    def _create_bucket(self):
        self.client().create_bucket(Bucket=self.bucket)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=self.env["AWS_DEFAULT_REGION"],
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])

    def keys(self, prefix=""):
        """Every object key in the bucket under `prefix`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
