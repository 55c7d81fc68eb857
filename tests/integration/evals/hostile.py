"""A test evaluation that attacks its pilot the way the point's ``mode`` says (see test_hostile.py)."""
import json
import os
import subprocess
import sys

p = json.load(open("input.json"))
mode = p["mode"]
task_dir = os.environ["GRIDHPO_TASK_DIR"]
ok = {"status": 0, "loss": 1.5, "message": "fine"}


def write(text: str) -> None:
    with open("output.json", "w") as f:
        f.write(text)


if mode == "ok":
    json.dump(ok, open("output.json", "w"))
elif mode == "bigint":  # a loss no float can hold: OverflowError in float()
    write('{"status": 0, "loss": 1' + "0" * 400 + "}")
elif mode == "bigextra":  # a valid loss beside a 400-digit integer (beyond the bookkeeping's 64 bits)
    write('{"status": 0, "loss": 2.5, "huge": 1' + "0" * 400 + "}")
elif mode == "deep":  # RecursionError in json.loads
    write('{"status": 0, "loss": 1.0, "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
elif mode == "deepmetric":  # a metrics line nested 200,000 levels: ignored, the result counts
    with open("metrics.jsonl", "w") as f:
        f.write('{"step": 1, "x": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
        f.write('{"step": 2, "loss": 3.0}\n')
    json.dump(ok, open("output.json", "w"))
elif mode == "fifo":  # open() of a FIFO waits for a writer forever
    os.mkfifo("output.json")
elif mode == "zero":  # an endless file
    os.symlink("/dev/zero", "output.json")
elif mode == "outside":  # a file outside the work directory, with a valid result in it
    os.symlink(os.path.join(task_dir, "outside.json"), "output.json")
elif mode == "hardlink":  # the same file by a hard link
    os.link(os.path.join(task_dir, "outside.json"), "output.json")
elif mode == "metricslink":  # metrics.jsonl a link to a file outside
    os.symlink(os.path.join(task_dir, "outside.jsonl"), "metrics.jsonl")
    json.dump(ok, open("output.json", "w"))
elif mode == "bigmessage":  # a valid result whose message and extra values exceed a message
    out = dict(ok, message="m" * 2_000_000, blob="b" * 2_000_000, nested={"a": ["c" * 100_000] * 30},
               **{"k" * 300_000: 1.0, "fine": 7.0})
    json.dump(out, open("output.json", "w"))
elif mode == "bigstatus":  # a failure whose message alone exceeds a message
    json.dump({"status": 3, "loss": 1.0, "message": "e" * 2_000_000}, open("output.json", "w"))
elif mode == "flood":  # many metric lines at once, then the result
    n = int(p.get("lines", 100_000))
    with open("metrics.jsonl", "w") as f:
        f.writelines(f'{{"step": {i}, "loss": {1.0 / (i + 1)}}}\n' for i in range(n))
    json.dump(ok, open("output.json", "w"))
elif mode == "setsid":  # a child in a session of its own, left sleeping; its pid where the test finds it
    env = dict(os.environ) if p.get("inherit", True) else {"PATH": os.environ["PATH"]}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(task_dir, f"child-{p['tag']}.pid"), "w") as f:
        f.write(str(child.pid))
    if not p.get("inherit", True):
        # without the inherited marker only the pilot's scans find the child: live long enough
        # for some (the scans' interval is SCAN_EVERY, a second)
        import time
        time.sleep(4)
    json.dump(ok, open("output.json", "w"))
elif mode == "stderr":  # a long stderr without a newline, then a failure
    chunk = "x" * (1 << 20)
    for _ in range(int(p.get("mb", 64))):
        sys.stderr.write(chunk)
    sys.stderr.write("\nthe last line\n")
    sys.exit(4)
elif mode == "fail":
    sys.exit(5)
else:
    raise SystemExit(f"unknown mode {mode}")
