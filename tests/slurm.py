"""A private single-node Slurm cluster from Debian's packages (slurm-wlm, munge).

munged, slurmctld and slurmd run with a munge key and a slurm.conf written to a temp dir
(proctrack/linuxproc, task/none: no cgroups, no systemd), on free ports, so tests neither need
nor touch the machine's own Slurm. Clients find it through ``SLURM_CONF``.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port, unavailable, use_server

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "mungekey")



def _stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)  # a daemon that forked from us may be our zombie
        except ChildProcessError:
            pass
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@contextmanager
def slurm_cluster(tmp: Path, cpus: int = 8) -> Iterator[dict[str, str]]:
    """Start the cluster; yields the environment variables its clients need (SLURM_CONF)."""
    use_server("Slurm")
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        unavailable(f"Slurm/munge not installed ({', '.join(missing)}; .ci/setup-slurm.sh installs them)")
    if os.geteuid() != 0:
        unavailable("the test Slurm cluster runs slurmd as root")
    for sub in ("munge", "state", "spool", "log"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    (tmp / "munge").chmod(0o711)
    key = tmp / "munge" / "munge.key"
    subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True, capture_output=True)
    key.chmod(0o400)
    sock = tmp / "munge" / "munge.sock"
    host = socket.gethostname().split(".")[0]
    conf = tmp / "slurm.conf"
    (tmp / "plugstack.conf").write_text("")
    conf.write_text(f"""\
ClusterName=gridhpo-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
AuthInfo=socket={sock}
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.pid
SlurmdSpoolDir={tmp}/spool
StateSaveLocation={tmp}/state
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
KillWait=15
InactiveLimit=0
MinJobAge=600
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile={tmp}/log/slurmctld.log
SlurmdLogFile={tmp}/log/slurmd.log
PlugStackConfig={tmp}/plugstack.conf
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    env = {"SLURM_CONF": str(conf)}
    full = {**os.environ, **env}
    pid_files = [tmp / "slurmd.pid", tmp / "slurmctld.pid", tmp / "munge" / "munged.pid"]
    try:
        subprocess.run(["munged", "--force", f"--socket={sock}", f"--key-file={key}",
                        f"--pid-file={tmp}/munge/munged.pid", f"--log-file={tmp}/munge/munged.log",
                        f"--seed-file={tmp}/munge/munged.seed"], check=True, capture_output=True, timeout=30)
        subprocess.run(["slurmctld", "-i", "-f", str(conf)], check=True, capture_output=True, env=full, timeout=30)
        subprocess.run(["slurmd", "-f", str(conf)], check=True, capture_output=True, env=full, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=full, timeout=30)
            if proc.returncode == 0 and proc.stdout.strip() == "idle":
                break
            if time.monotonic() > deadline:
                logs = "".join(p.read_text()[-800:] for p in (tmp / "log").glob("*.log"))
                unavailable(f"the test Slurm cluster did not come up: {proc.stdout}{proc.stderr}{logs}")
            time.sleep(0.3)
        yield env
    finally:
        subprocess.run(["scancel", "--full", "--user", "root"], env=full, capture_output=True, check=False)
        time.sleep(0.5)
        for pid_file in pid_files:
            _stop(pid_file)


FAKE = r'''\
"""A fake of Slurm's sbatch and squeue (tests/slurm.py, fake_slurm): what gridhpo calls of them."""
import os, re, subprocess, sys, time
from pathlib import Path

STATE = Path(os.environ["GRIDHPO_FAKE_SLURM"])


def seconds(text):
    m = re.match(r"^(?:(\d+)-)?(\d+):(\d+):(\d+)$", text)
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def clock(secs):
    secs = max(0, int(secs))
    return f"{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"


def sbatch(args):
    script = Path(args[-1])
    opts = dict(re.findall(r"^#SBATCH --([a-z-]+)=(.*)$", script.read_text(), re.M))
    job = str(len(list(STATE.glob("*.job"))) + 1000)
    limit = seconds(opts["time"])
    out = open(opts.get("output", f"slurm-{job}.out"), "ab")
    env = dict(os.environ, SLURM_JOB_ID=job, SLURM_JOB_END_TIME=str(int(time.time()) + limit))
    proc = subprocess.Popen(["bash", str(script)], stdout=out, stderr=subprocess.STDOUT, env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    (STATE / f"{job}.job").write_text(f"{proc.pid} {time.time()} {limit}")
    print(job)


def alive(pid):
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def squeue(args):
    fmt = args[args.index("-o") + 1]
    wanted = args[args.index("-j") + 1].split(",") if "-j" in args else None
    for path in sorted(STATE.glob("*.job")):
        job = path.stem
        pid, start, limit = path.read_text().split()
        if (wanted is None or job in wanted) and alive(int(pid)):
            ran = time.time() - float(start)
            fields = {"%i": job, "%T": "RUNNING", "%M": clock(ran), "%L": clock(float(limit) - ran)}
            print(re.sub(r"%[iTML]", lambda m: fields[m.group(0)], fmt))


{"sbatch": sbatch, "squeue": squeue}[Path(sys.argv[0]).name](sys.argv[1:])
'''


@contextmanager
def fake_slurm(tmp: Path) -> Iterator[dict[str, str]]:
    """``sbatch`` and ``squeue`` that run each job as a local process with the variables Slurm
    sets (SLURM_JOB_ID, SLURM_JOB_END_TIME): the fast tier's Slurm. Yields the environment
    (PATH first) its clients need; the jobs still running at the end are killed."""
    bin_dir, state = tmp / "bin", tmp / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir()
    for name in ("sbatch", "squeue"):
        (bin_dir / name).write_text(f"#!{sys.executable}\n{FAKE}")
        (bin_dir / name).chmod(0o755)
    try:
        yield {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "GRIDHPO_FAKE_SLURM": str(state)}
    finally:
        for job in state.glob("*.job"):
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.killpg(int(job.read_text().split()[0]), signal.SIGKILL)
