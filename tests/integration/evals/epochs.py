"""A test training: `epochs` of 0.15 s each, loss = x + 1/epoch, checkpointed each epoch and
on SIGTERM, resumed from checkpoint/ on a retried attempt. Trains up to the resource budget
of gridhpo.json (early stopping) or the `epochs` parameter."""
import json
import os
import signal
import sys
import time

p = json.load(open("input.json"))
ctx = json.load(open("gridhpo.json"))
last = int(ctx.get("budget", {}).get("max_resource") or p.get("epochs", 9))
state_file = os.path.join("checkpoint", "state.json")
epoch = json.load(open(state_file))["epoch"] if os.path.exists(state_file) else 0
print(f"attempt {ctx['attempt']} starts after epoch {epoch}", file=sys.stderr)


def save(e):
    tmp = state_file + ".tmp"
    json.dump({"epoch": e}, open(tmp, "w"))
    os.replace(tmp, state_file)


def on_term(*_):
    save(epoch)
    sys.exit(143)


signal.signal(signal.SIGTERM, on_term)
while epoch < last:
    time.sleep(0.15)
    epoch += 1
    save(epoch)
    with open("metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": epoch, "loss": p["x"] + 1.0 / epoch}) + "\n")
json.dump({"status": 0, "loss": p["x"] + 1.0 / epoch}, open("output.json", "w"))
