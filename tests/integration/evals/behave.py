"""A test evaluation whose behaviour the point chooses: mode = ok | exit | nooutput | badjson | status | nan."""
import json
import math
import sys
import time

p = json.load(open("input.json"))
mode = p.get("mode", "ok")
print(f"evaluating {p}", file=sys.stderr)
with open("metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": 1, "loss": p["x"] + 1}) + "\n")
time.sleep(float(p.get("sleep", 0)))
if mode == "exit":
    print("Traceback: something broke in training", file=sys.stderr)
    sys.exit(3)
if mode == "nooutput":
    sys.exit(0)
if mode == "badjson":
    open("output.json", "w").write("{not json")
    sys.exit(0)
out = {"status": 0, "loss": p["x"] ** 2, "message": ""}
if mode == "status":
    out = {"status": 2, "loss": 1.0, "message": "diverged"}
if mode == "nan":
    out["loss"] = math.nan
json.dump(out, open("output.json", "w"))
