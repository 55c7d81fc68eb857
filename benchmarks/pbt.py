"""Population-based training against ASHA + TPE and random search at equal compute, on the
PBT example's model (examples/pbt/train.py: a NumPy network on the digits, lr and weight decay).

Each strategy trains the same model, epoch by epoch, with 8 asynchronous workers, until the
compute budget (epochs summed over all points: the population times max_resource, so PBT
spends exactly it) is spent: random search (every point trained to max_resource), ASHA + TPE
(hyperopt) and PBT (8 members; at each perturbation point the worst quantile copies the
weights, momentum included, of the best and perturbs their config). It prints, as medians
over the seeds, the best validation loss against compute and at the end, the compute each
needed to reach the final best of random search, and the schedule PBT found for the first
seed; and it draws that seed's population and schedule, with the median curves, to a PNG.

    .venv/bin/python benchmarks/pbt.py [--seeds 10] [--max-resource 30] [--interval 5]
        [--strategies random,asha,pbt] [--pbt-options '{"quantile_fraction": 0.5}']
        [--figure docs/pbt_benchmark.png]

The workers are simulated in one process (one epoch per busy worker per tick, members taken
in turn), so the table measures the algorithms, not the machine; the steering runs the very
same Population, Scheduler and Optimiser classes. About 3 s per seed and strategy on one core.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("pbt_train", ROOT / "examples" / "pbt" / "train.py")
assert _spec is not None and _spec.loader is not None
T = importlib.util.module_from_spec(_spec)
sys.modules["pbt_train"] = T
_spec.loader.exec_module(T)

from gridhpo.steering import optimisers, schedulers  # noqa: E402
from gridhpo.steering.population import Exploit, Population, Segment  # noqa: E402
from gridhpo.steering.schedulers import Decision  # noqa: E402
from gridhpo.steering.taskfile import parse_task  # noqa: E402

SPACE = {"lr": {"type": "float", "low": 1e-3, "high": 0.5, "log": True},
         "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}}
NAMES = {"random": "random", "asha": "ASHA + TPE", "pbt": "PBT"}
Curve = list[tuple[int, float]]  # (epochs spent, best validation loss so far)


@dataclass
class PBTTrace:
    """One PBT run as the figure draws it."""

    losses: dict[int, dict[int, float]] = field(default_factory=dict)  # member -> step -> loss (latest)
    exploits: list[tuple[int, int, int]] = field(default_factory=list)  # (member, parent, step)
    schedule: list[Segment] = field(default_factory=list)
    best: int = 0


class Member:
    def __init__(self, params: dict[str, Any], data: tuple[Any, ...]) -> None:
        self.params = dict(params)
        self.data = data
        self.state = T.State.fresh(data[0].shape[1], 10, 0)

    def epoch(self) -> float:
        x, y, xv, yv = self.data
        T.epoch(self.state, x, y, float(self.params["lr"]), float(self.params["weight_decay"]))
        return float(T.evaluate(self.state, xv, yv)[0])


def _spec_of(backend: str, algorithm: str | None, scheduler: str, seed: int, args: argparse.Namespace,
             options: dict[str, Any] | None = None) -> Any:
    return parse_task({
        "name": "bench", "search_space": SPACE, "optimiser": {"backend": backend, "algorithm": algorithm, "seed": seed},
        "budget": {"max_points": args.workers if scheduler == "pbt" else 10_000, "parallel": args.workers},
        "early_stopping": {"scheduler": scheduler, "min_resource": 1, "max_resource": args.max_resource,
                           "reduction_factor": 3, **({"options": options} if options else {})},
        "evaluation": {"command": "true"},
    })


def run_search(strategy: str, seed: int, args: argparse.Namespace, data: tuple[Any, ...]) -> Curve:
    """Random search or ASHA + TPE: points trained until done or stopped."""
    backend, algorithm, scheduler = {"random": ("random", None, "none"), "asha": ("hyperopt", "tpe", "asha")}[strategy]
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


def run_pbt(seed: int, args: argparse.Namespace, data: tuple[Any, ...]) -> tuple[Curve, PBTTrace]:
    """One member per worker, each trained to max_resource; an exploit copies the whole state."""
    options = {"population": args.workers, "perturbation_interval": args.interval, "seed": seed, **args.pbt_options}
    spec = _spec_of("random", None, "pbt", seed, args, options)
    pop = Population(schedulers.create(spec).pbt, spec.search_space)  # type: ignore[attr-defined]
    members = {s.number: Member(s.params, data) for s in optimisers.create(spec).ask(args.workers)}
    for n, m in members.items():
        pop.add(n, m.params)
    saved: dict[str, Any] = {}
    trace = PBTTrace()
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
            trace.losses.setdefault(n, {})[step] = loss
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
                trace.exploits.append((n, decision.source, int(decision.step)))
    trace.best = min(pop.members.values(),
                     key=lambda m: (m.value if m.value is not None else float("inf"), m.index)).index
    trace.schedule = pop.schedule(trace.best)
    return curve, trace


def reach(curve: Curve, target: float) -> int | None:
    return next((c for c, b in curve if b <= target), None)


# PBT may spend a little more than the budget: a member that copies a member one perturbation
# point behind trains those epochs again. Every figure is read at the budget, as for the others.


def at(curve: Curve, spent: int) -> float:
    """The best loss after ``spent`` epochs."""
    return next((b for c, b in reversed(curve) if c <= spent), float("inf"))


def table(curves: dict[str, list[Curve]], args: argparse.Namespace) -> float | None:
    """Print the medians; returns random search's median final best (the target), if run."""
    target = statistics.median(at(c, args.budget) for c in curves["random"]) if curves.get("random") else None
    marks = [args.budget // 4, args.budget // 2, args.budget]
    print(f"\nbest validation loss (median of {args.seeds} seeds) against compute (epochs summed), "
          f"{args.workers} workers, {args.max_resource} epochs per point, PBT interval {args.interval}"
          + (f", PBT options {json.dumps(args.pbt_options)}" if args.pbt_options else "") + "\n")
    print(f"{'strategy':<12}" + "".join(f"{f'@{m}':>10}" for m in marks) + f"{'epochs to random best':>24}")
    for strategy, cs in curves.items():
        vals = [statistics.median(at(c, m) for c in cs) for m in marks]
        reached = ""
        if target is not None:
            hits = [h if h is not None and h <= args.budget else None for h in (reach(c, target) for c in cs)]
            med = statistics.median([h if h is not None else float("inf") for h in hits])
            n = sum(h is not None for h in hits)
            reached = f"{int(med) if med != float('inf') else 'never'} ({n}/{len(cs)} reach)"
        print(f"{NAMES[strategy]:<12}" + "".join(f"{v:>10.4f}" for v in vals) + f"{reached:>24}")
    if target is not None:
        print(f"\nrandom search's final best (median): {target:.4f}")
    if "pbt" in curves and "asha" in curves:
        wins = sum(at(p, args.budget) <= at(a, args.budget) for p, a in zip(curves["pbt"], curves["asha"], strict=True))
        print(f"PBT's final best at least as good as ASHA + TPE's in {wins} of {args.seeds} seeds")
    return target


def draw(path: Path, curves: dict[str, list[Curve]], trace: PBTTrace, target: float | None,
         args: argparse.Namespace) -> None:
    """The median curves; the first seed's PBT population (dotted: exploits, from the parent's
    loss at the step copied to the copier's next); its best member's schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(15, 4.2))
    spent = range(1, args.budget + 1)
    for strategy, cs in curves.items():
        ax0.plot(list(spent), [statistics.median(at(c, x) for c in cs) for x in spent], label=NAMES[strategy])
    if target is not None:
        ax0.axhline(target, color="grey", lw=0.8, ls=":", label="random's final best")
    ax0.set(title=f"best validation loss, median of {args.seeds} seeds", xlabel="epochs spent (all workers)",
            ylabel="loss", ylim=(0.04, 0.2))
    ax0.legend()
    colours = plt.get_cmap("tab10")
    for n, losses in sorted(trace.losses.items()):
        steps = sorted(losses)
        ax1.plot(steps, [losses[s] for s in steps], color=colours(n % 10), lw=1, label=f"member {n}")
    for n, parent, step in trace.exploits:
        y0, y1 = trace.losses[parent].get(step), trace.losses[n].get(step + 1)
        if y0 is not None and y1 is not None:
            ax1.plot([step, step + 1], [y0, y1], color=colours(n % 10), ls=":", lw=2)
    ax1.set(title=f"PBT population, seed {args.first_seed} (dotted: exploits)", xlabel="epoch",
            ylabel="validation loss (latest at each epoch)", yscale="log")
    ax1.legend(fontsize=6, ncol=2)
    changes = [s.step for s in trace.schedule] + [float(args.max_resource)]
    for name, ax, colour in (("lr", ax2, "C0"), ("weight_decay", ax2.twinx(), "C3")):
        values = [s.config_after[name] for s in trace.schedule]
        ax.step(changes, values + values[-1:], where="post", color=colour, label=name)
        ax.set_yscale("log")
        ax.set_ylabel(name, color=colour)
    ax2.set(title=f"schedule of PBT's best member ({trace.best}), seed {args.first_seed}", xlabel="epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--max-resource", type=int, default=30)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--strategies", default="random,asha,pbt")
    ap.add_argument("--pbt-options", type=json.loads, default={}, help="JSON: more early_stopping.options for PBT")
    ap.add_argument("--figure", default=str(ROOT / "docs" / "pbt_benchmark.png"), help="'' for none")
    args = ap.parse_args()
    args.budget = args.workers * args.max_resource
    strategies = args.strategies.split(",")
    data = T.data()
    curves: dict[str, list[Curve]] = {s: [] for s in strategies}
    first: PBTTrace | None = None
    t0 = time.time()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for strategy in strategies:
            if strategy == "pbt":
                curve, trace = run_pbt(seed, args, data)
                first = first or trace
            else:
                curve = run_search(strategy, seed, args, data)
            curves[strategy].append(curve)
        print(f"  seed {seed}: " + ", ".join(f"{NAMES[s]} {at(c[-1], args.budget):.4f}" for s, c in curves.items())
              + f" ({time.time() - t0:.0f}s)", file=sys.stderr)
    target = table(curves, args)
    if first is not None:
        print(f"\nPBT's schedule of its best member (member {first.best}, seed {args.first_seed}): "
              "from step, lr, weight_decay, copied from")
        for s in first.schedule:
            print(f"  {s.step:>5g}  {s.config_after['lr']:.4g}  {s.config_after['weight_decay']:.3g}  "
                  f"{'' if s.parent is None else f'member {s.parent}'}")
    if args.figure and first is not None:
        draw(Path(args.figure), curves, first, target, args)
        print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
