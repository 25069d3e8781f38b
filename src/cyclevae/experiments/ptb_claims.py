"""The paper's PTB claims, checked against our runs and their seed-to-seed spread.

Each :class:`Claim` compares one test-set metric of two rows (``a`` against ``b``): a
direction the paper reports (``+1``: a higher than b, ``-1``: lower) or the absence of a gain
(``0``: a not higher than b). :func:`check_claim` measures the difference of the rows' means
and judges it by Welch's t: the half-width of its two-sided 95% interval, ``t(0.975, nu) *
sqrt(sd_a^2 / n_a + sd_b^2 / n_b)``, with each row's own seed standard deviation where it has
two or more seeds and otherwise the pooled standard deviation of the rows that have (said so in
the verdict), and ``nu`` the Welch-Satterthwaite degrees of freedom of those sds (see
:func:`welch_dof`). With three seeds a row's sd has 2 degrees of freedom and ``t`` is about 2.8
to 4.3, not the normal 2: a few seeds cannot vouch for a small difference. With no seeds to
measure a spread the verdict says so and judges the sign only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

#: the test-set metrics a claim may compare (nats per sentence; ELBO higher is better)
METRICS = ("rec", "kl", "elbo")


@dataclass(frozen=True)
class Spread:
    """One metric of one row over its seeds: ``mean``, sample ``sd`` (None for one seed)."""

    mean: float
    sd: float | None
    n: int
    values: tuple[float, ...]


def spread(values: Sequence[float]) -> Spread:
    """Mean and sample standard deviation of ``values`` (at least one)."""
    if not values:
        raise ValueError("spread of no values")
    sd = statistics.stdev(values) if len(values) > 1 else None
    return Spread(statistics.fmean(values), sd, len(values), tuple(values))


def pooled_sd(spreads: Sequence[Spread]) -> float | None:
    """The pooled sample standard deviation of the spreads with two or more values
    (variances weighted by their degrees of freedom), or None where there are none."""
    measured = [s for s in spreads if s.sd is not None]
    dof = sum(s.n - 1 for s in measured)
    if dof == 0:
        return None
    return math.sqrt(sum((s.n - 1) * s.sd**2 for s in measured) / dof)  # type: ignore[operator]


def welch_dof(parts: Sequence[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variance estimates.

    ``parts`` holds ``(v, nu)`` per term: ``v`` the estimated variance of one mean (``sd^2 /
    n``), ``nu`` the degrees of freedom of its sd (``n - 1``, or a pooled sd's). Returns
    ``(sum v)^2 / sum(v^2 / nu)``, which lies between the smallest ``nu`` and their sum; where
    every ``v`` is 0 (no spread at all) the sum of the ``nu``.
    """
    if any(nu <= 0 for _, nu in parts):
        raise ValueError("welch_dof: every term needs positive degrees of freedom")
    total = sum(v for v, _ in parts)
    if total == 0:
        return float(sum(nu for _, nu in parts))
    # in shares of the total, so that tiny variances do not underflow when squared
    return 1.0 / sum((v / total) ** 2 / nu for v, nu in parts)


def t_half_width(se: float, dof: float, level: float = 0.95) -> float:
    """Half-width of the two-sided ``level`` Student-t interval: ``t((1 + level) / 2, dof) *
    se`` (same units as ``se``)."""
    return float(stats.t.ppf((1 + level) / 2, dof)) * se


@dataclass(frozen=True)
class Claim:
    """``a`` against ``b`` on ``metric``: ``direction`` +1 (a higher), -1 (a lower), 0 (a not
    higher: no gain). ``paper`` is the paper's own difference, a - b, where it prints both."""

    text: str
    a: str
    b: str
    metric: str
    direction: int
    paper: float | None = None


def best_epoch_row(row: str) -> str:
    """The name under which a row's best-on-valid checkpoint (metrics.json ``best``) is
    compared, e.g. Table 1's "SA-VAE, M (best epoch)" (M*)."""
    return f"{row} (best epoch)"


def _paper(numbers: Mapping[str, Mapping[str, float]], a: str, b: str, metric: str
           ) -> float | None:
    if metric in numbers.get(a, {}) and metric in numbers.get(b, {}):
        return round(numbers[a][metric] - numbers[b][metric], 3)
    return None


def paper_claims(paper: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[Claim]:
    """The claims of Table 1 and Table 4 (section 5.1) with the paper's own differences;
    ``paper`` maps ``"Table 1"`` / ``"Table 4"`` to row -> published test numbers (a claim
    labelled "Table 4" takes that table's numbers, the others Table 1's)."""
    specs = [
        ("Cyclical beta gives a higher KL than monotonic (beta_max = 1)",
         "vae-cyclical-cyclr", "vae-monotonic", "kl", +1),
        ("... and a lower Rec", "vae-cyclical-cyclr", "vae-monotonic", "rec", -1),
        ("... at an ELBO no worse (monotonic's ELBO not higher than cyclical's)",
         "vae-monotonic", "vae-cyclical-cyclr", "elbo", 0),
        ("beta_max = 0.5 gives a higher KL than beta_max = 1 (monotonic)",
         "vae-beta0.5-monotonic", "vae-monotonic", "kl", +1),
        ("beta_max = 0.5 gives a higher KL than beta_max = 1 (cyclical)",
         "vae-beta0.5-cyclical", "vae-cyclical-cyclr", "kl", +1),
        ("beta_max = 0.5 gives a worse ELBO than beta_max = 1 (monotonic)",
         "vae-beta0.5-monotonic", "vae-monotonic", "elbo", -1),
        ("beta_max = 0.5 gives a worse ELBO than beta_max = 1 (cyclical)",
         "vae-beta0.5-cyclical", "vae-cyclical-cyclr", "elbo", -1),
        ("beta_max = 0.5: cyclical gives a better ELBO than monotonic",
         "vae-beta0.5-cyclical", "vae-beta0.5-monotonic", "elbo", +1),
        ("Table 4: the cyclical beta raises KL (constant lr)",
         "vae-cyclical", "vae-monotonic", "kl", +1),
        ("Table 4: the cyclical beta raises KL (cyclical lr)",
         "vae-cyclical-cyclr", "vae-monotonic-cyclr", "kl", +1),
        ("Table 4: the cyclical lr alone does not raise KL (monotonic beta)",
         "vae-monotonic-cyclr", "vae-monotonic", "kl", 0),
        ("SA-VAE: cyclical beta gives a higher KL than monotonic",
         "savae-cyclical", "savae-monotonic", "kl", +1),
        ("SA-VAE: ... and a lower Rec", "savae-cyclical", "savae-monotonic", "rec", -1),
        ("SA-VAE: ... at a similar ELBO (monotonic's not higher than cyclical's)",
         "savae-monotonic", "savae-cyclical", "elbo", 0),
        ("SA-VAE M at its best epoch (M*) has a better ELBO than VAE M",
         best_epoch_row("savae-monotonic"), "vae-monotonic", "elbo", +1),
        ("The authors' ramp: cyclical beta gives a higher KL than monotonic",
         "vae-cyclical-cyclr-authors", "vae-monotonic-authors", "kl", +1),
        ("The authors' ramp: ... at an ELBO no worse (monotonic's not higher than cyclical's)",
         "vae-monotonic-authors", "vae-cyclical-cyclr-authors", "elbo", 0),
        # the paper's Table 1 claim carried to the Transformer VAE (issue 32; no paper numbers)
        ("Transformer VAE: cyclical beta gives a higher KL than monotonic",
         "transformer-cyclical", "transformer-monotonic", "kl", +1),
        ("Transformer VAE: ... and a lower Rec", "transformer-cyclical",
         "transformer-monotonic", "rec", -1),
        ("Transformer VAE: ... at an ELBO no worse (monotonic's not higher than cyclical's)",
         "transformer-monotonic", "transformer-cyclical", "elbo", 0),
    ]
    return [Claim(text, a, b, metric, direction,
                  _paper(paper.get("Table 4" if text.startswith("Table 4") else "Table 1", {}),
                         a, b, metric))
            for text, a, b, metric, direction in specs]


def check_claim(claim: Claim, rows: Mapping[str, Mapping[str, Spread]],
                yardstick: Mapping[str, float | None], dof: int | None = None
                ) -> dict[str, Any]:
    """Measure ``claim`` on ``rows`` (row -> metric -> :class:`Spread`).

    ``yardstick`` maps a metric to the pooled seed sd to use for a row with one seed, ``dof``
    its degrees of freedom (needed whenever a row borrows it, and named in the verdict). Returns
    ``{"claim", "a", "b", "metric", "paper", "ours", "se", "dof", "t95", "seeds", "verdict"}``:
    ``ours`` is mean(a) - mean(b) (None, with a "not measured" verdict, when a row is missing),
    ``se`` its standard error, ``dof`` the Welch-Satterthwaite degrees of freedom and ``t95``
    the half-width of the two-sided 95% t interval, the threshold of the verdict (all in the
    metric's units, nats per sentence; None where no spread is measured).
    """
    out: dict[str, Any] = {"claim": claim.text, "a": claim.a, "b": claim.b,
                           "metric": claim.metric, "paper": claim.paper, "ours": None,
                           "se": None, "dof": None, "t95": None, "seeds": None}
    missing = [r for r in (claim.a, claim.b) if claim.metric not in rows.get(r, {})]
    if missing:
        out["verdict"] = "not measured (no finished run of " + ", ".join(missing) + ")"
        return out
    sa, sb = rows[claim.a][claim.metric], rows[claim.b][claim.metric]
    delta = sa.mean - sb.mean
    out["ours"] = round(delta, 3)
    out["seeds"] = f"{sa.n} vs {sb.n}"
    borrowed = sa.sd is None or sb.sd is None
    both_borrowed = sa.sd is None and sb.sd is None
    pooled = yardstick.get(claim.metric)
    if borrowed and pooled is None:
        if claim.direction == 0:
            sign = "a not higher" if delta <= 0 else f"a higher by {delta:.3g}"
        else:
            sign = "same direction" if delta * claim.direction > 0 else "opposite direction"
        out["verdict"] = f"{sign}; no seed spread measured to judge it (one seed each)"
        return out
    if borrowed and not dof:
        raise ValueError(f"check_claim: {claim.metric}: a borrowed pooled sd needs its "
                         "degrees of freedom (dof)")
    parts = [((s.sd if s.sd is not None else pooled) ** 2 / s.n,  # type: ignore[operator]
              s.n - 1 if s.sd is not None else dof) for s in (sa, sb)]
    if both_borrowed:  # one sd estimate for both: one term, not two
        parts = [(parts[0][0] + parts[1][0], dof)]
    se = math.sqrt(sum(v for v, _ in parts))
    nu = welch_dof(parts)  # type: ignore[arg-type]
    threshold = t_half_width(se, nu)
    out.update(se=round(se, 3), dof=round(nu, 1), t95=round(threshold, 3))
    note = ""
    if borrowed:
        who = "both 1-seed rows take" if both_borrowed else "the 1-seed row takes"
        note = (f" ({who} the pooled seed sd of the multi-seed rows, {dof} "
                f"degree{'s' if dof != 1 else ''} of freedom)")
    if claim.direction == 0:
        verdict = ("does not hold: a gain beyond seed noise" if delta > threshold
                   else "holds (no gain beyond seed noise)")
    elif delta * claim.direction > threshold:
        verdict = "holds, beyond seed noise"
    elif delta * claim.direction > 0:
        verdict = "same direction, within seed noise"
    elif -delta * claim.direction > threshold:
        verdict = "does not hold: the opposite, beyond seed noise"
    else:
        verdict = "opposite direction, within seed noise"
    out["verdict"] = verdict + note
    return out


def row_spreads(tests: Mapping[str, Sequence[Mapping[str, Any]]]
                ) -> dict[str, dict[str, Spread]]:
    """row -> metric -> :class:`Spread` from each row's test blocks (one per seed)."""
    out: dict[str, dict[str, Spread]] = {}
    for row, blocks in tests.items():
        for metric in METRICS:
            values = [float(b[metric]) for b in blocks if b and b.get(metric) is not None]
            if values:
                out.setdefault(row, {})[metric] = spread(values)
    return out


def check_claims(tests: Mapping[str, Sequence[Mapping[str, Any]]],
                 paper: Mapping[str, Mapping[str, Mapping[str, float]]]
                 ) -> list[dict[str, Any]]:
    """Every claim of :func:`paper_claims` measured on ``tests`` (row -> the test blocks of
    its seeds), single-seed rows judged with the pooled seed sd of the multi-seed rows."""
    rows = row_spreads(tests)
    yardstick = {m: pooled_sd([r[m] for r in rows.values() if m in r]) for m in METRICS}
    dofs = {m: sum(r[m].n - 1 for r in rows.values() if m in r) for m in METRICS}
    return [check_claim(c, rows, yardstick, dofs[c.metric]) for c in paper_claims(paper)]
