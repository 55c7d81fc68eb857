#!/usr/bin/env bash
# A single-node Slurm from Debian's packages (slurmctld, slurmd, munge) for tests/integration/test_slurm.py;
# the tests write their own slurm.conf and munge key into a temp dir and start the daemons themselves.
set -euo pipefail
need=()
for pkg in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# the packages may start their own daemons with the system configuration: the tests run their own
for svc in slurmctld slurmd munge; do
  if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
done
exit 0
