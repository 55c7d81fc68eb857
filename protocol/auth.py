"""Who may say what on the queues: events prove their task's token, the steering signs what
pilots act on.

Anyone who can reach the broker can read and write a queue whose name they know, so nothing
on a queue is trusted for where it is:

- Events and hellos (pilot to steering) carry in ``auth`` a message authentication code over
  the message, HMAC-SHA256 keyed by a key derived from the task's token (once per token, then
  cached), never the token: reading a task's events queue gives nothing that lets one write as
  its pilots. ``Broker`` turns a token given as ``auth`` into the code as it publishes
  (``with_mac``), so no message carries a token; the steering finds the token that proves a
  message (``proven_token``) among the task's current and replaced ones.
- Points, control messages, task ends and hello replies (steering to pilots) carry in ``sig``
  the steering's Ed25519 signature. What the steering publishes at once (``Gate.wire_many``,
  from ``Broker.publish_many``) is signed as one batch: a Merkle tree over the messages
  (protocol/sigtree.py, RFC 6962 hashing), whose root is signed once; a single message is a
  batch of one. ``sig`` is ``ed25519:SIG.INDEX.N.P1.P2...``: the root's signature, the
  message's leaf index, the batch size and its audit path (base64url, no padding). A pilot
  holds the verifying half, given with its token (``gridhpo token TASK`` prints
  ``TOKEN.KEY``); its ``Verifier`` recomputes the root from the message and its path, checks
  the root's signature (remembering the last ``ROOT_CACHE`` verified roots with their
  signature, so the points of one batch cost one check) and that the message names its task.
  Its ``Broker`` turns any message of those kinds that does not pass into an undecodable one,
  which the pilot sets aside in the dead-letter queue, reported, never run.

Both codes cover the canonical form of the message: its JSON with sorted keys, compact, ASCII,
without the ``auth`` and ``sig`` fields. It is serialised once: the wire text is the canonical
text with the code appended as its last member (``sealed_text``), and a receiver given that
text takes the covered bytes by cutting the member off again (``covered``) instead of
serialising the parsed message anew; any other text (re-serialised on the way, say through the
HTTP gateway) is made canonical again, and checked all the same.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gridhpo import config
from gridhpo.errors import ConfigError
from gridhpo.protocol import sigtree
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
ROOT_CACHE = 1024  # verified batch roots a pilot remembers
_MAX_PATH = 40  # hashes in an audit path: a batch of up to 2**40 messages
# the signature (64 bytes), the leaf index, the batch size, the path's hashes (32 bytes each)
_SIG = re.compile(rf"ed25519:[A-Za-z0-9_-]{{86}}\.(0|[1-9][0-9]{{0,11}})\.([1-9][0-9]{{0,11}})"
                  rf"((?:\.[A-Za-z0-9_-]{{43}}){{0,{_MAX_PATH}}})")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:-]*")  # what a code or a signature is written with
_event_keys: dict[str, bytes] = {}  # token -> its events key (derived once per token)


class Unauthentic(ValueError):
    """A message that does not carry a valid code or signature."""


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes a code or signature covers: the same on both sides of any transport."""
    rest = {str(k): v for k, v in body.items() if k not in ("auth", "sig")}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sealed_text(canon: bytes, field: str, value: str) -> bytes:
    """The wire text of a message whose canonical form is ``canon`` with ``field`` (its code or
    signature: text that needs no escaping) as the last member."""
    member = b'"' + field.encode() + b'":"' + value.encode() + b'"}'
    return b"{" + member if canon == b"{}" else canon[:-1] + b"," + member


def covered(raw: object, field: str, value: object) -> bytes | None:
    """The bytes a code or signature covers when ``raw``, the text received, is what
    ``sealed_text`` made, else None. Sound for any text: ``raw`` ends with the member
    ``"field":"value"`` at its top level, so what is left is the message without it; a
    steering or pilot never covers text holding that field, so a forgery gains nothing."""
    if isinstance(raw, str):  # py-amqp hands over a body with a content encoding decoded
        raw = raw.encode()
    if not isinstance(raw, bytes) or not isinstance(value, str) or not _SAFE_VALUE.fullmatch(value):
        return None
    member = b',"' + field.encode() + b'":"' + value.encode() + b'"}'
    if len(raw) <= len(member) + 1 or not raw.endswith(member):
        return None
    return raw[:-len(member)] + b"}"


def key_id(token: str) -> str:
    """Names a token without revealing it or its point queue (hello replies carry it)."""
    if not token or token == UNPROVEN:
        return ""
    return hmac.new(token.encode(), _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:20]


def _event_key(token: str) -> bytes:
    key = _event_keys.get(token)
    if key is None:
        if len(_event_keys) >= 4096:  # tokens replaced over a long run: start again
            _event_keys.clear()
        key = _event_keys[token] = hmac.new(token.encode(), _EVENT_KEY_LABEL, hashlib.sha256).digest()
    return key


def _mac(token: str, canon: bytes) -> str:
    return MAC_PREFIX + hmac.new(_event_key(token), canon, hashlib.sha256).hexdigest()


def mac_text(body: Mapping[str, Any]) -> bytes:
    """The wire text of an event or hello whose ``auth`` holds the token: the code in its place."""
    canon = canonical(body)
    return sealed_text(canon, "auth", _mac(body["auth"], canon))


def with_mac(body: Mapping[str, Any]) -> dict[str, Any]:
    """An event or hello whose ``auth`` holds the token, with the code in its place."""
    return dict(json.loads(mac_text(body)))


def needs_mac(body: Mapping[str, Any]) -> bool:
    """True for an event or hello still carrying its token in clear."""
    auth = body["auth"] if "auth" in body else ""
    return message_kind(body) in PROVEN_KINDS and isinstance(auth, str) and bool(auth) \
        and not auth.startswith(MAC_PREFIX)


def proven_token(body: object, tokens: Iterable[str | None], raw: object = None) -> str:
    """The token among ``tokens`` whose code ``body`` carries; "" when it carries none,
    ``UNPROVEN`` when no token matches (a token sent in clear is never accepted). ``raw``: the
    text received, when there is one (saves serialising ``body`` again, see ``covered``)."""
    if not isinstance(body, Mapping) or "auth" not in body or not body["auth"]:
        return ""
    presented = body["auth"]
    if not isinstance(presented, str) or not presented.startswith(MAC_PREFIX):
        return UNPROVEN
    canon = covered(raw, "auth", presented) or canonical(body)
    for token in tokens:
        if token and hmac.compare_digest(_mac(token, canon).encode(), presented.encode()):
            return token
    return UNPROVEN


# ---------------------------------------------------------------------- signatures


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _sig_bytes(text: str) -> bytes:
    """``_unb64`` of a part of a signature ``_SIG`` matched (so only base64url characters):
    a third of a pilot's check went to base64's generic decoding."""
    return binascii.a2b_base64(text.encode().translate(_FROM_URLSAFE) + b"=" * (-len(text) % 4))


class Signer:
    """The steering's signing key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = Verifier(key.public_key())

    def sign(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` signed alone (a batch of one), as the receiver decodes it."""
        return dict(json.loads(self.seal([body])[0]))

    def seal(self, bodies: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """The wire texts of ``bodies`` signed as one batch: one signature for all."""
        canons = [canonical(b) for b in bodies]
        root, paths = sigtree.build(canons)
        n = len(canons)
        head = SIG_PREFIX + _b64(self._key.sign(sigtree.signed_bytes(n, root)))
        texts: dict[bytes, str] = {}  # the inner nodes are on many paths: each encoded once
        for path in paths:
            for h in path:
                if h not in texts:
                    texts[h] = _b64(h)
        return [sealed_text(c, "sig", ".".join([head, str(i), str(n), *[texts[h] for h in path]]))
                for i, (c, path) in enumerate(zip(canons, paths, strict=True))]


class Verifier:
    """The steering's verifying key, as pilots hold it, with the batch roots it verified."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self._roots: OrderedDict[bytes, None] = OrderedDict()  # signature + signed bytes, verified
        self._lock = threading.Lock()

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

    def check(self, body: object, task_ids: set[int], raw: object = None) -> None:
        """Raises ``Unauthentic`` unless ``body`` is signed by this key for one of ``task_ids``.
        ``raw``: the text received, when there is one (see ``covered``)."""
        if not isinstance(body, Mapping):
            raise Unauthentic("not a JSON object")
        sig = body["sig"] if "sig" in body else None
        if not isinstance(sig, str) or not sig.startswith(SIG_PREFIX):
            raise Unauthentic("not signed by the steering")
        found = _SIG.fullmatch(sig)
        if found is None:
            raise Unauthentic("its signature is malformed")
        index, n = int(found.group(1)), int(found.group(2))
        path = [_sig_bytes(p) for p in found.group(3).split(".")[1:]]
        leaf = sigtree.leaf_hash(covered(raw, "sig", sig) or canonical(body))
        try:
            root = sigtree.root_from_path(leaf, index, n, path)
        except sigtree.BadPath as exc:
            raise Unauthentic(f"its signature's path does not hold: {exc}") from None
        self._check_root(_sig_bytes(sig[len(SIG_PREFIX):sig.index(".")]), sigtree.signed_bytes(n, root))
        task = body["task_id"] if "task_id" in body else None
        if task not in task_ids:
            raise Unauthentic(f"signed for task {str(task)[:20]}, not this pilot's")

    def _check_root(self, signature: bytes, signed: bytes) -> None:
        """Verifies the signature of a batch's root, once per root and signature: the cache
        holds only pairs this key verified, so a root reached by a wrong path or presented
        with another signature is checked (and refused) in full."""
        seen = signature + signed
        with self._lock:
            if seen in self._roots:
                self._roots.move_to_end(seen)
                return
        try:
            self._key.verify(signature, signed)
        except (InvalidSignature, ValueError) as exc:
            raise Unauthentic("its signature is not the steering's") from exc
        with self._lock:
            self._roots[seen] = None
            if len(self._roots) > ROOT_CACHE:
                self._roots.popitem(last=False)


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
        return self.outgoing_many([body])[0]

    def outgoing_many(self, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``wire_many`` as the receiver decodes it (for transports that serialise themselves)."""
        return [w if isinstance(w, dict) else dict(json.loads(w)) for w in self.wire_many(bodies)]

    def wire_many(self, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any] | bytes]:
        """Bodies as they go on the wire: events and hellos with their code instead of the
        token, the messages of signed kinds signed as one batch (both as their wire text, see
        ``sealed_text``); any other body as it is."""
        out: list[dict[str, Any] | bytes] = list(bodies)
        to_sign: list[int] = []
        for i, body in enumerate(bodies):
            if needs_mac(body):
                out[i] = mac_text(body)
            elif self._signer is not None and message_kind(body) in SIGNED_KINDS and "sig" not in body:
                to_sign.append(i)
        if to_sign and self._signer is not None:
            for i, text in zip(to_sign, self._signer.seal([bodies[i] for i in to_sign]), strict=True):
                out[i] = text
        return out

    def incoming(self, body: Any, raw: object = None) -> Any:
        """A decoded body as the consumer sees it: a message of a signed kind that no trusted
        key verifies for its task comes out ``Undecodable`` with the reason (never acted on).
        ``raw``: the text received, when there is one."""
        if not self._trusted or message_kind(body) not in SIGNED_KINDS:
            return body
        reasons = []
        for verifier, tasks in self._trusted:
            try:
                verifier.check(body, tasks, raw)
                return body
            except Unauthentic as exc:
                reasons.append(str(exc))
        log.error("a %s message refused: %s", message_kind(body), "; ".join(reasons))
        return Undecodable(f"a {message_kind(body)} message refused: {'; '.join(reasons)}")
