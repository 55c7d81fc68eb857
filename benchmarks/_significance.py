"""When a benchmark column counts as worse than its reference: a one-sided Mann-Whitney U test
over the seeds (``quality.py``'s regret rows, ``multi_objective.py``'s hypervolume rows)."""
from __future__ import annotations

# a column is called worse than the reference on a problem only where a one-sided Mann-Whitney U
# test over the seeds says so at this level: two runs of one column differ by as much as the
# columns do (docs/optimisers.md), so a median above the reference's is not by itself a loss
SIGNIFICANT = 0.05


def worse_p(mine: list[float], reference: list[float], higher_is_better: bool = False) -> float:
    """p-value of "``mine`` is worse than ``reference``" (one-sided Mann-Whitney U over the seeds,
    ties corrected): small only when its values are mostly above the reference's (below, with
    ``higher_is_better``)."""
    from scipy.stats import mannwhitneyu

    if len(set(mine) | set(reference)) == 1:
        return 1.0  # every value equal: no evidence either way (the test is undefined)
    alternative = "less" if higher_is_better else "greater"
    return float(mannwhitneyu(mine, reference, alternative=alternative).pvalue)


def significance(worse: list[str], of: int) -> str:
    where = f": {', '.join(worse)}" if worse else ""
    return f"worse than the reference (one-sided Mann-Whitney U, p < {SIGNIFICANT}) on {len(worse)}/{of}{where}"
