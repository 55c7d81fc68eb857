"""The S3 store (``s3://bucket/prefix``) through boto3, for AWS and S3-compatible servers.

Settings, first found wins: the URL's query (``?endpoint=http://host:8333&region=eu-1&profile=p``)
and user info (``s3://KEY:SECRET@bucket/prefix``), then the environment (``AWS_ENDPOINT_URL``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``), then the usual AWS configuration files. An S3 PUT (and a multipart upload,
on its completion) makes an object visible only once complete, which is the store contract.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gridhpo.checkpoints._base import MissingObjectError, ObjectStore, check_key, too_large
from gridhpo.config import redact
from gridhpo.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)
_QUERY = {"endpoint", "region", "profile"}


class S3Store(ObjectStore):
    def __init__(self, url: str) -> None:
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config
        except ImportError as exc:
            raise ConfigError(f"store URL {redact(url)!r} needs boto3: pip install 'gridhpo[s3]'") from exc
        parts = urlsplit(url)
        self.url = redact(url.split("?", 1)[0])
        if parts.scheme != "s3" or not parts.hostname:
            raise ConfigError(f"store URL {self.url!r}: an S3 store is s3://bucket[/prefix][?endpoint=URL&region=R]")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - _QUERY
        if unknown:
            raise ConfigError(f"store URL {self.url!r}: unknown setting {sorted(unknown)[0]!r} "
                              f"(allowed: {', '.join(sorted(_QUERY))})")
        self.bucket = parts.hostname
        self.prefix = parts.path.strip("/")
        session_args: dict[str, Any] = {}
        if query.get("profile"):
            session_args["profile_name"] = query["profile"]
        if parts.username:
            session_args["aws_access_key_id"] = unquote(parts.username)
            session_args["aws_secret_access_key"] = unquote(parts.password or "")
        client_args: dict[str, Any] = {
            "config": Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60),
        }
        if query.get("endpoint"):
            client_args["endpoint_url"] = query["endpoint"]
        if query.get("region"):
            client_args["region_name"] = query["region"]
        try:
            session = boto3.session.Session(**session_args)
            if "region_name" not in client_args and session.region_name is None:
                client_args["region_name"] = "us-east-1"  # S3-compatible servers ignore it; boto3 needs one
            self.client = session.client("s3", **client_args)
        except Exception as exc:  # botocore raises many unrelated classes for bad settings
            raise ConfigError(f"store {self.url}: {type(exc).__name__}: {exc}") from exc
        self.transfer = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=32 << 20, max_concurrency=4)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, what: str, key: str, exc: Exception) -> CheckpointError:
        return CheckpointError(f"store {self.url}: {what} {key!r} failed: {type(exc).__name__}: {exc}")

    def put(self, key: str, path: Path) -> None:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)
        except (BotoCoreError, ClientError, Boto3Error, OSError) as exc:
            raise self._error("upload of", key, exc) from exc

    def get(self, key: str, path: Path, max_bytes: int | None = None) -> None:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if max_bytes is None:
                self.client.download_file(self.bucket, self._key(key), str(path), Config=self.transfer)
            else:
                self._get_at_most(key, path, max_bytes)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise MissingObjectError(f"store {self.url}: no object {key}") from exc
            raise self._error("download of", key, exc) from exc
        except (BotoCoreError, Boto3Error, OSError) as exc:
            raise self._error("download of", key, exc) from exc

    def _get_at_most(self, key: str, path: Path, max_bytes: int) -> None:
        """One ranged GET: the server sends at most ``max_bytes``, its Content-Range the real size."""
        from botocore.exceptions import ClientError

        if max_bytes == 0:
            if self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"] > 0:
                raise too_large(self.url, key, max_bytes)
            path.write_bytes(b"")
            return
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes=0-{max_bytes - 1}")
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) != "InvalidRange":
                raise
            path.write_bytes(b"")  # the range starts past the end: an empty object
            return
        body = resp["Body"]
        try:
            total = str(resp.get("ContentRange") or "").rpartition("/")[2]
            if (total.isdigit() and int(total) > max_bytes) or int(resp.get("ContentLength") or 0) > max_bytes:
                raise too_large(self.url, key, max_bytes)
            left = max_bytes  # a server that ignored the range is still read no further
            with path.open("wb") as out:
                while left > 0 and (chunk := body.read(min(1 << 20, left))):
                    out.write(chunk)
                    left -= len(chunk)
        finally:
            body.close()

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        out: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                out.extend(o["Key"][strip:] for o in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise self._error("listing of", prefix, exc) from exc
        return sorted(out)

    def copy(self, src: str, dst: str, max_bytes: int | None = None) -> None:
        """Server-side (CopyObject, multipart above 5 GB): the bytes never leave the store. The
        size is checked on the object whose ETag is then copied, so a replacement in between
        fails the copy instead of slipping past the limit."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(src))
            if max_bytes is not None and int(head["ContentLength"]) > max_bytes:
                raise too_large(self.url, src, max_bytes)
            self.client.copy({"Bucket": self.bucket, "Key": self._key(src)}, self.bucket, self._key(dst),
                             ExtraArgs={"CopySourceIfMatch": head["ETag"]}, Config=self.transfer)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise MissingObjectError(f"store {self.url}: no object {src}") from exc
            raise self._error(f"copy to {dst!r} of", src, exc) from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise self._error(f"copy to {dst!r} of", src, exc) from exc

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._error("deletion of", key, exc) from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests and first use of a private server)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError:
            pass  # missing (404) or not ours (403): creating it tells which, with a clear error
        except BotoCoreError as exc:
            raise self._error("access to bucket", self.bucket, exc) from exc
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise self._error("creation of bucket", self.bucket, exc) from exc

    def close(self) -> None:
        self.client.close()
