#!/usr/bin/env bash
# The Debian root filesystem the steering image test builds on (tests/podman.py imports it):
# made once per machine with debootstrap and kept in /var/cache/gridhpo, since CI reaches
# Debian's packages and PyPI but no image registry.
set -euo pipefail
if ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
bash "$(dirname "$0")/../containers/base/make-rootfs.sh" /var/cache/gridhpo/debian-bookworm-python3.tar
