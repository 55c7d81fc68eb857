#!/usr/bin/env bash
# A Debian root filesystem with Python 3, as a tarball that `podman import` (or `docker import`)
# turns into a base image, for machines that reach Debian's packages but no image registry:
#   containers/base/make-rootfs.sh /var/cache/gridhpo/debian-bookworm-python3.tar
#   podman import /var/cache/gridhpo/debian-bookworm-python3.tar localhost/gridhpo-base:bookworm
#   podman build --build-arg BASE=localhost/gridhpo-base:bookworm -f containers/steering/Containerfile .
# The tarball is made once and kept: a second call with the same path returns at once.
# Needs root and debootstrap (Debian's package of that name).
set -euo pipefail
out=${1:?usage: make-rootfs.sh OUTPUT.tar [SUITE] [MIRROR]}
suite=${2:-bookworm}
mirror=${3:-http://deb.debian.org/debian}
# what a Python service image needs: python3 with venv (ensurepip), TLS roots; nothing else
packages=python3,python3-venv,ca-certificates
stamp="$suite $mirror $packages"
if [ -s "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$out is up to date"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "make-rootfs.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
root=$(mktemp -d "${TMPDIR:-/tmp}/gridhpo-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# apt's lists and the package cache are of no use in an image
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" --numeric-owner -cf "$out.part" .
mv "$out.part" "$out"
echo "$stamp" > "$out.stamp"
echo "made $out ($(du -h "$out" | cut -f1))"
