"""Population-based training against ASHA + TPE and random search at equal compute, on the
PBT example's model (examples/pbt/train.py: a NumPy network on the digits, lr and weight decay).

Each strategy trains the same model, epoch by epoch, with 8 asynchronous workers, until the
compute budget (epochs summed over all points: the population times max_resource, so PBT
spends exactly it) is spent: random search (every point trained to max_resource), ASHA + TPE
(hyperopt) and PBT (8 members; the worst quarter copies the weights, momentum included, of
the best quarter every ``interval`` epochs and perturbs their config). It prints the best
validation loss against compute (median over seeds), the compute each needed to reach the
final best of random search, and the schedule PBT found for seed 0.

    .venv/bin/python benchmarks/pbt.py [--seeds 3] [--max-resource 30] [--interval 5]

The workers are simulated in one process (one epoch per busy worker per tick), so the table
measures the algorithms, not the machine; the steering runs the very same Population,
Scheduler and Optimiser classes. On a shared 2-core machine use few seeds and say so.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("pbt_train", ROOT / "examples" / "pbt" / "train.py")
assert _spec is not None and _spec.loader is not None
T = importlib.util.module_from_spec(_spec)
sys.modules["pbt_train"] = T
_spec.loader.exec_module(T)

from gridhpo.steering import optimisers, schedulers  # noqa: E402
from gridhpo.steering.population import Exploit, Population  # noqa: E402
from gridhpo.steering.schedulers import Decision  # noqa: E402
from gridhpo.steering.taskfile import parse_task  # noqa: E402

SPACE = {"lr": {"type": "float", "low": 1e-3, "high": 0.5, "log": True},
         "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}}
Curve = list[tuple[int, float]]


class Member:
    def __init__(self, params: dict[str, Any], data: tuple[Any, ...]) -> None:
        self.params = dict(params)
        self.data = data
        x = data[0]
        self.state = T.State.fresh(x.shape[1], 10, 0)

    def epoch(self) -> float:
        x, y, xv, yv = self.data
        T.epoch(self.state, x, y, float(self.params["lr"]), float(self.params["weight_decay"]))
        return float(T.evaluate(self.state, xv, yv)[0])


def _spec_of(backend: str, algorithm: str | None, scheduler: str, seed: int, args: argparse.Namespace,
             options: dict[str, Any] | None = None) -> Any:
    return parse_task({
        "name": "bench", "search_space": SPACE, "optimiser": {"backend": backend, "algorithm": algorithm, "seed": seed},
        "budget": {"max_points": 8 if scheduler == "pbt" else 10_000, "parallel": args.workers},
        "early_stopping": {"scheduler": scheduler, "min_resource": 1, "max_resource": args.max_resource,
                           "reduction_factor": 3, **({"options": options} if options else {})},
        "evaluation": {"command": "true"},
    })


def run_search(strategy: str, seed: int, args: argparse.Namespace, data: tuple[Any, ...]) -> Curve:
    """Random search or ASHA + TPE: points trained until done or stopped."""
    backend, algorithm, scheduler = {"random": ("random", None, "none"),
                                     "ASHA + TPE": ("hyperopt", "tpe", "asha")}[strategy]
    spec = _spec_of(backend, algorithm, scheduler, seed, args)
    opt, sched = optimisers.create(spec), schedulers.create(spec)
    slots: list[tuple[int, Member, int] | None] = [None] * args.workers
    spent, best, curve = 0, float("inf"), []
    while spent < args.budget:
        for i in range(args.workers):
            if spent >= args.budget:
                break
            if slots[i] is None:
                [s] = opt.ask(1)
                slots[i] = (s.number, Member(s.params, data), 0)
            number, member, done = slots[i]  # type: ignore[misc]
            loss = member.epoch()
            spent, done = spent + 1, done + 1
            best = min(best, loss)
            curve.append((spent, best))
            if sched.report(number, float(done), loss) is not Decision.CONTINUE or done >= args.max_resource:
                opt.tell(number, loss)
                slots[i] = None
            else:
                slots[i] = (number, member, done)
    return curve


def run_pbt(seed: int, args: argparse.Namespace, data: tuple[Any, ...]) -> tuple[Curve, list[Any]]:
    """8 members, one per worker, each trained to max_resource; exploits copy the whole state."""
    spec = _spec_of("random", None, "pbt", seed, args, {"population": 8, "perturbation_interval": args.interval,
                                                         "seed": seed})
    opt = optimisers.create(spec)
    pop = Population(schedulers.create(spec).pbt, spec.search_space)  # type: ignore[attr-defined]
    members = {s.number: Member(s.params, data) for s in opt.ask(8)}
    for n, m in members.items():
        pop.add(n, m.params)
    saved: dict[str, Any] = {}
    spent, best, curve = 0, float("inf"), []
    while any(m.state.epoch < args.max_resource for m in members.values()):
        for n, m in members.items():
            if m.state.epoch >= args.max_resource:
                continue
            loss = m.epoch()
            spent += 1
            best = min(best, loss)
            curve.append((spent, best))
            step = m.state.epoch
            if step % args.interval and step < args.max_resource:
                continue
            ref = f"{n}@{step}"
            saved[ref] = copy.deepcopy(m.state)
            pop.checkpoint(n, float(step), ref)
            if step >= args.max_resource:
                pop.finish(n)
            decision = pop.report(n, float(step), loss)
            if isinstance(decision, Exploit):
                m.state = copy.deepcopy(saved[decision.checkpoint])
                m.params = dict(decision.config)
                pop.restored(n, decision.checkpoint)
    return curve, pop.schedule(_best(pop))


def _best(pop: Population) -> int:
    return min(pop.members.values(), key=lambda m: (m.value if m.value is not None else float("inf"), m.index)).index


def reach(curve: Curve, target: float) -> int | None:
    return next((c for c, b in curve if b <= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--max-resource", type=int, default=30)
    ap.add_argument("--interval", type=int, default=5)
    args = ap.parse_args()
    args.budget = 8 * args.max_resource
    data = T.data()
    curves: dict[str, list[Curve]] = {"random": [], "ASHA + TPE": [], "PBT": []}
    schedule: list[Any] = []
    t0 = time.time()
    for seed in range(args.seeds):
        for strategy in ("random", "ASHA + TPE"):
            curves[strategy].append(run_search(strategy, seed, args, data))
        curve, sched = run_pbt(seed, args, data)
        curves["PBT"].append(curve)
        schedule = schedule or sched
        print(f"  seed {seed}: " + ", ".join(f"{s} {c[-1][-1][1]:.4f}" for s, c in curves.items())
              + f" ({time.time() - t0:.0f}s)", file=sys.stderr)
    target = statistics.median(c[-1][1] for c in curves["random"])
    marks = [args.budget // 4, args.budget // 2, args.budget]
    print(f"\nbest validation loss (median of {args.seeds} seeds) against compute (epochs summed), "
          f"{args.workers} workers, {args.max_resource} epochs per point, PBT interval {args.interval}\n")
    print(f"{'strategy':<12}" + "".join(f"{f'@{m}':>10}" for m in marks) + f"{'epochs to random best':>24}")
    for strategy, cs in curves.items():
        vals = [statistics.median(dict(c).get(m, c[-1][1]) for c in cs) for m in marks]
        hits = [reach(c, target) for c in cs]
        med = statistics.median([h if h is not None else float("inf") for h in hits])
        print(f"{strategy:<12}" + "".join(f"{v:>10.4f}" for v in vals)
              + f"{(str(int(med)) if med != float('inf') else 'never'):>24}")
    print(f"\nrandom search's final best (median): {target:.4f}")
    print("\nPBT's schedule of its best member (seed 0): from step, lr, weight_decay, copied from")
    for s in schedule:
        print(f"  {s.step:>5g}  {s.config_after['lr']:.4g}  {s.config_after['weight_decay']:.3g}  "
              f"{'' if s.parent is None else f'member {s.parent}'}")


if __name__ == "__main__":
    main()
