"""The BG/NBD "buy till you die" model: population fit and per-customer closed forms.

Fader, Hardie and Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2):275-284. While alive a customer buys as a Poisson
process with rate lambda ~ Gamma(r, alpha); after each repeat purchase they drop out for good
with probability p ~ Beta(a, b). A customer is summarised by x (repeat purchases), t_x (time of
the last purchase since the first) and T (time since the first purchase), in days here.

Written with scipy rather than PyMC-Marketing: the formulas are short and closed-form, a maximum
likelihood fit of four parameters on the distinct (x, t_x, T) triples takes well under a second,
and PyMC brings pytensor's compiler and a large install into every environment (BENCHMARKS.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

log = logging.getLogger(__name__)

# parameters are fitted on the log scale, inside these bounds: wide enough for rates per day
# (alpha of several thousand days) and keeps a degenerate population from running to infinity
LOG_BOUNDS = (-12.0, 12.0)
A_NEAR_ONE = 1e-4


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.r, self.alpha, self.a, self.b


def log_likelihood(params: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood, FHL 2005 equation (6)."""
    r, alpha, a, b = params.as_tuple()
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)  # = ln[G(a+b)G(b+x) / (G(b)G(a+b+x))]
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray | None = None) -> BgNbd:
    """Maximum likelihood (r, alpha, a, b). `weights` counts customers sharing one (x, t_x, T):
    day-level summaries repeat a lot, so the fit runs on the distinct triples."""
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype="float64")
    if len(x) == 0:
        raise ValueError("BG/NBD fit: no customers with a purchase before the cutoff")
    total = w.sum()

    def loss(theta: np.ndarray) -> float:
        value = -(w * log_likelihood(BgNbd(*np.exp(theta)), x, t_x, T)).sum() / total
        return float(value) if np.isfinite(value) else 1e300

    # alpha is a time scale: start it at the mean age, so days or weeks start equally well
    start = np.log([1.0, max(float((w * T).sum() / total), 1.0), 1.0, 1.0])
    result = minimize(loss, start, method="L-BFGS-B", bounds=[LOG_BOUNDS] * 4)
    if not result.success:
        log.warning("BG/NBD fit did not converge (%s); using the best parameters found", result.message)
    return BgNbd(*(float(v) for v in np.exp(result.x)))


def p_alive(params: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(still a customer at T | x, t_x, T) (Fader, Hardie and Lee, "Computing P(alive) using the
    BG/NBD model", 2008 note):
    1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x)). 1 when x = 0: in the
    BG/NBD nobody drops out before a repeat purchase."""
    r, alpha, a, b = params.as_tuple()
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        odds = np.exp(np.log(a) - np.log(np.maximum(b + x - 1, 1e-300))
                      + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
    return np.where(x > 0, 1.0 / (1.0 + odds), 1.0)


def expected_purchases(params: BgNbd, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T], FHL 2005 equation (10)."""
    r, alpha, a, b = params.as_tuple()
    # the formula is continuous in a but 0/0 at a = 1 (a fit with no repeat buyers stays there):
    # evaluated just beside it, the error is far below anything a feature can notice
    a = a if abs(a - 1) > A_NEAR_ONE else 1 + A_NEAR_ONE
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        head = (a + b + x - 1) / (a - 1)
        tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        return head * tail * p_alive(BgNbd(r, alpha, a, b), x, t_x, T)


def p_no_purchase(params: BgNbd, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(no purchase in (T, T + t] | x, t_x, T): gone already, or alive and no Poisson event in t.
    Given alive at T, lambda ~ Gamma(r + x, alpha + T), so P(no event) = ((alpha+T)/(alpha+T+t))^(r+x);
    a customer can drop out only right after a purchase, so one without purchases stays alive."""
    r, alpha, _, _ = params.as_tuple()
    x, t_x, T = (np.asarray(v, dtype="float64") for v in (x, t_x, T))
    alive = p_alive(params, x, t_x, T)
    return (1 - alive) + alive * ((alpha + T) / (alpha + T + t)) ** (r + x)


def simulate(params: BgNbd, T: np.ndarray, horizon: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Customers drawn from the model, first purchase at 0, observed until T: their (x, t_x, T) and
    the purchases they go on to make in (T, T + horizon]. For tests and benchmarks."""
    rng = np.random.default_rng(seed)
    T = np.asarray(T, dtype="float64")
    n = len(T)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    x, t_x, future = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        now = 0.0
        while True:
            now += rng.exponential(1.0 / lam[i]) if lam[i] > 0 else np.inf
            if now > T[i] + horizon:
                break
            if now <= T[i]:
                x[i] += 1
                t_x[i] = now
            else:
                future[i] += 1
            if rng.random() < p[i]:
                break
    return {"x": x, "t_x": t_x, "T": T, "future": future}
