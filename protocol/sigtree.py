"""One signature for a batch of messages: a Merkle tree as RFC 6962 (and RFC 9162, 2.1) builds
it, whose root the steering signs once.

A leaf's hash is SHA-256(0x00 || data) and an inner node's SHA-256(0x01 || left || right), so
that the data of a leaf can never pass for an inner node nor an inner node for a leaf. A tree
of ``n`` leaves splits at the largest power of two below ``n``. Each message carries its leaf's
index, ``n`` and its audit path (the sibling hashes from the leaf up); the receiver recomputes
the root from the message's own bytes and the path (``root_from_path``, RFC 9162 2.1.3.2, which
refuses a path too short or too long for the index and size) and checks the signature of that
root. What is signed is ``signed_bytes(n, root)``: a label of ours, the size and the root, so a
root signed for one size is not one for another and nothing else signed with the key is a root.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_BYTES = 32
MAX_LEAVES = 1 << 20  # far beyond any batch the steering publishes: a bound on what is parsed
_LEAF = b"\x00"
_NODE = b"\x01"
_LABEL = b"gridhpo-sigtree-v1\x00"


class BadPath(ValueError):
    """An audit path that cannot lead from its leaf to a root of a tree of the size it says."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def signed_bytes(n: int, root: bytes) -> bytes:
    """What the key signs for a tree of ``n`` leaves with this root."""
    return _LABEL + n.to_bytes(8, "big") + root


def build(leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root of the tree over the data ``leaves`` and each leaf's audit path (leaf to root)."""
    if not leaves:
        raise ValueError("a tree needs at least one leaf")
    hashes = [leaf_hash(d) for d in leaves]
    paths: list[list[bytes]] = [[] for _ in leaves]

    def subtree(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return hashes[lo]
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # the largest power of two below hi - lo
        left, right = subtree(lo, lo + k), subtree(lo + k, hi)
        for i in range(lo, lo + k):
            paths[i].append(right)
        for i in range(lo + k, hi):
            paths[i].append(left)
        return node_hash(left, right)

    return subtree(0, len(leaves)), paths


def root_from_path(leaf: bytes, index: int, n: int, path: Sequence[bytes]) -> bytes:
    """The root a leaf hash and its audit path lead to in a tree of ``n`` leaves (RFC 9162,
    2.1.3.2); ``BadPath`` when the index, size or path length cannot belong together."""
    if not 0 <= index < n <= MAX_LEAVES:
        raise BadPath(f"leaf {index} of {n}")
    fn, sn, r = index, n - 1, leaf
    for p in path:
        if len(p) != HASH_BYTES:
            raise BadPath("a path hash of the wrong length")
        if sn == 0:
            raise BadPath("the path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:  # the right edge: levels where this leaf has no sibling
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise BadPath("the path is shorter than the tree is deep")
    return r
