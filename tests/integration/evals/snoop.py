"""A test evaluation that reads every secret it can reach: its own environment, then ``environ``,
``cmdline``, ``mem`` and ``maps`` of each of its ancestors, and every process's command line
(what ``ps -eo args`` shows). What it read (or the error it got) goes to ``snoop.json`` in its
work directory and in ``$SNOOP_DIR``."""
import json
import os
import shutil
import subprocess


def read(path):
    try:
        with open(path, "rb") as f:
            return {"text": f.read(1 << 20).decode("utf-8", "replace").replace("\0", " ")}
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc.strerror}"}


def parent_of(pid):
    stat = read(f"/proc/{pid}/stat").get("text", "")
    return int(stat.rsplit(")", 1)[1].split()[1]) if stat else 0


ancestors = []
pid = os.getppid()
while pid > 1 and len(ancestors) < 8:
    ancestors.append({"pid": pid, **{name: read(f"/proc/{pid}/{name}") for name in ("environ", "cmdline", "maps")},
                      "mem": read(f"/proc/{pid}/mem").get("error", "opened")})
    pid = parent_of(pid)
cmdlines = {}
for entry in os.listdir("/proc"):
    if entry.isdigit():
        cmdlines[entry] = [parent_of(entry), read(f"/proc/{entry}/cmdline").get("text", "")]
ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout if shutil.which("ps") else ""
record = {"pid": os.getpid(), "environ": dict(os.environ), "ancestors": ancestors, "cmdlines": cmdlines, "ps": ps}
with open("snoop.json", "w") as f:
    json.dump(record, f)
shutil.copy("snoop.json", os.path.join(os.environ["SNOOP_DIR"], f"snoop-{os.getpid()}.json"))
print(f"read the environ of {sum('text' in a['environ'] for a in ancestors)} of {len(ancestors)} ancestors",
      file=os.sys.stderr)
json.dump({"loss": 1.0}, open("output.json", "w"))
