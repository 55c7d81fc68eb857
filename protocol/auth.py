"""Who may say what on the queues: events prove their task's token, the steering signs what
pilots act on.

Anyone who can reach the broker can read and write a queue whose name they know, so nothing
on a queue is trusted for where it is:

- Events and hellos (pilot to steering) carry in ``auth`` a message authentication code over
  the message, HMAC-SHA256 keyed by a key derived from the task's token, never the token:
  reading a task's events queue gives nothing that lets one write as its pilots. ``Broker``
  turns a token given as ``auth`` into the code as it publishes (``with_mac``), so no message
  carries a token; the steering finds the token that proves a message (``proven_token``) among
  the task's current and replaced ones.
- Points, control messages, task ends and hello replies (steering to pilots) carry in ``sig``
  an Ed25519 signature by the steering's key over the message. A pilot holds the verifying
  half, given with its token (``gridhpo token TASK`` prints ``TOKEN.KEY``), and its
  ``Broker`` turns any such message that is not signed by that key for its own task into an
  undecodable one, which the pilot sets aside in the dead-letter queue, reported, never run.

Both codes cover the canonical form of the message: its JSON with sorted keys, compact, ASCII,
without the ``auth`` and ``sig`` fields.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gridhpo import config
from gridhpo.errors import ConfigError
from gridhpo.protocol.messages import Undecodable, message_kind

log = logging.getLogger(__name__)

MAC_PREFIX = "hmac-sha256:"
SIG_PREFIX = "ed25519:"
PROVEN_KINDS = ("event", "hello")  # pilot to steering: a MAC by the task's token
SIGNED_KINDS = ("point", "control", "task-end", "hello-reply")  # steering to pilots: signed
UNPROVEN = "(unproven)"  # what a message whose code matches no token is taken to present
KEY_FILE = "steering.key"  # in GRIDHPO_HOME, mode 0600: the steering's signing key
_EVENT_KEY_LABEL = b"gridhpo-events-v1"
_KEY_ID_LABEL = b"gridhpo-key-id-v1"


class Unauthentic(ValueError):
    """A message that does not carry a valid code or signature."""


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes a code or signature covers: the same on both sides of any transport."""
    rest = {str(k): v for k, v in body.items() if k not in ("auth", "sig")}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _wire(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` as the receiver will decode it (tuples become lists, keys text)."""
    return dict(json.loads(json.dumps(body)))


def key_id(token: str) -> str:
    """Names a token without revealing it or its point queue (hello replies carry it)."""
    if not token or token == UNPROVEN:
        return ""
    return hmac.new(token.encode(), _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:20]


def _mac(token: str, body: Mapping[str, Any]) -> str:
    key = hmac.new(token.encode(), _EVENT_KEY_LABEL, hashlib.sha256).digest()
    return MAC_PREFIX + hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def with_mac(body: Mapping[str, Any]) -> dict[str, Any]:
    """An event or hello whose ``auth`` holds the token, with the code in its place."""
    token = body["auth"]
    out = _wire(body)
    out["auth"] = _mac(token, out)
    return out


def needs_mac(body: Mapping[str, Any]) -> bool:
    """True for an event or hello still carrying its token in clear."""
    auth = body["auth"] if "auth" in body else ""
    return message_kind(body) in PROVEN_KINDS and isinstance(auth, str) and bool(auth) \
        and not auth.startswith(MAC_PREFIX)


def proven_token(body: object, tokens: Iterable[str | None]) -> str:
    """The token among ``tokens`` whose code ``body`` carries; "" when it carries none,
    ``UNPROVEN`` when no token matches (a token sent in clear is never accepted)."""
    if not isinstance(body, Mapping) or "auth" not in body or not body["auth"]:
        return ""
    presented = body["auth"]
    if not isinstance(presented, str) or not presented.startswith(MAC_PREFIX):
        return UNPROVEN
    for token in tokens:
        if token and hmac.compare_digest(_mac(token, body).encode(), presented.encode()):
            return token
    return UNPROVEN


# ---------------------------------------------------------------------- signatures


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """The steering's signing key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = Verifier(key.public_key())

    def sign(self, body: Mapping[str, Any]) -> dict[str, Any]:
        out = _wire(body)
        out["sig"] = SIG_PREFIX + _b64(self._key.sign(canonical(out)))
        return out


class Verifier:
    """The steering's verifying key, as pilots hold it."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def parse(cls, text: str) -> Verifier:
        try:
            raw = _unb64(text)
            return cls(Ed25519PublicKey.from_public_bytes(raw))
        except (ValueError, binascii.Error) as exc:
            raise ConfigError(f"the steering key {text[:12]!r}... is not an Ed25519 public key: {exc}") from None

    def text(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return _b64(self._key.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def check(self, body: object, task_ids: set[int]) -> None:
        """Raises ``Unauthentic`` unless ``body`` is signed by this key for one of ``task_ids``."""
        if not isinstance(body, Mapping):
            raise Unauthentic("not a JSON object")
        sig = body["sig"] if "sig" in body else None
        if not isinstance(sig, str) or not sig.startswith(SIG_PREFIX):
            raise Unauthentic("not signed by the steering")
        try:
            self._key.verify(_unb64(sig[len(SIG_PREFIX):]), canonical(body))
        except (InvalidSignature, ValueError, binascii.Error, TypeError) as exc:
            raise Unauthentic("its signature is not the steering's") from exc
        task = body["task_id"] if "task_id" in body else None
        if task not in task_ids:
            raise Unauthentic(f"signed for task {str(task)[:20]}, not this pilot's")


def steering_signer(home: Path | None = None) -> Signer:
    """The steering's signing key, created once in ``GRIDHPO_HOME`` (mode 0600, only its
    owner reads it); every steering of a bookkeeping must use the same file."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    path = (home or config.home()) / KEY_FILE
    if not path.exists():
        raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_b64(raw) + "\n")
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        log.info("created the steering's signing key %s", path)
    try:
        return Signer(Ed25519PrivateKey.from_private_bytes(_unb64(path.read_text().strip())))
    except (OSError, ValueError, binascii.Error) as exc:
        raise ConfigError(f"{path}: not a steering signing key ({exc}); remove it to create a new one") from None


def pilot_credential(token: str, key: str | None = None) -> str:
    """What a task's pilots are given: its token and the steering's verifying key, ``TOKEN.KEY``
    (tokens never contain a dot). ``key``: the signing steering's (steering/keys.py, from the
    bookkeeping); without it, this GRIDHPO_HOME's."""
    return f"{token}.{key or steering_signer().public.text()}"


def token_of(credential: str) -> str:
    """The token part of ``TOKEN.KEY`` (all of a bare token): what the gateway checks."""
    return credential.partition(".")[0]


def split_credential(credential: str | None) -> tuple[str | None, Verifier]:
    """A pilot's token and the steering's verifying key from what it was given. A bare token
    (a pilot sharing the steering's GRIDHPO_HOME) takes the key of that home."""
    if credential and "." in credential:
        return token_of(credential), Verifier.parse(credential.partition(".")[2])
    log.info("no steering key with the token: using the one in %s", config.home())
    return credential, steering_signer().public


class Gate:
    """A broker connection's checks at the wire: no token in clear goes out, what the steering
    sends is signed (``sign_with``), and a pilot takes only what its steering signed (``trust``)."""

    def __init__(self) -> None:
        self._signer: Signer | None = None
        self._trusted: list[tuple[Verifier, set[int]]] = []

    def sign_with(self, signer: Signer) -> None:
        """The steering's side: points, control messages, task ends and hello replies are signed."""
        self._signer = signer

    def trust(self, verifier: Verifier, task_id: int) -> None:
        """A pilot's side: a received message of a signed kind counts only if ``verifier``
        checks its signature and it names ``task_id``; any other comes out undecodable."""
        for known, tasks in self._trusted:
            if known.text() == verifier.text():
                tasks.add(task_id)
                return
        self._trusted.append((verifier, {task_id}))

    def outgoing(self, body: dict[str, Any]) -> dict[str, Any]:
        """A body as it goes on the wire: never with a token in clear, signed where it must be."""
        if needs_mac(body):
            return with_mac(body)
        if self._signer is not None and message_kind(body) in SIGNED_KINDS and "sig" not in body:
            return self._signer.sign(body)
        return body

    def incoming(self, body: Any) -> Any:
        """A decoded body as the consumer sees it: a message of a signed kind that no trusted
        key verifies for its task comes out ``Undecodable`` with the reason (never acted on)."""
        if not self._trusted or message_kind(body) not in SIGNED_KINDS:
            return body
        reasons = []
        for verifier, tasks in self._trusted:
            try:
                verifier.check(body, tasks)
                return body
            except Unauthentic as exc:
                reasons.append(str(exc))
        log.error("a %s message refused: %s", message_kind(body), "; ".join(reasons))
        return Undecodable(f"a {message_kind(body)} message refused: {'; '.join(reasons)}")
