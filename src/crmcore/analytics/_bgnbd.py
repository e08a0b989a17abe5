"""BG/NBD: who is still a customer, and how many purchases to expect from each.

The model of Fader, Hardie & Lee, "Counting Your Customers the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2), 2005: while alive a customer buys in a Poisson
process of rate ``lambda ~ Gamma(r, alpha)``; after every purchase they drop out with
probability ``p ~ Beta(a, b)``. A customer is summarised by ``x`` (repeat purchases), ``t_x``
(time of the last purchase after the first) and ``T`` (time from the first purchase to the end
of observation), in purchase *periods* (:mod:`crmcore.analytics._periods`).

The log-likelihood (their eq. 6, in log form so no term overflows)::

    LL = lnG(r+x) - lnG(r) + r ln(alpha)                         # A1
       + lnG(a+b) + lnG(b+x) - lnG(b) - lnG(a+b+x)                # A2
       + log(exp(A3) + [x > 0] exp(A4))
    A3 = -(r+x) ln(alpha+T)
    A4 = ln(a) - ln(b+x-1) - (r+x) ln(alpha+t_x)

is maximised over ``log`` of the four parameters (so they stay positive) with the analytic
gradient below; standard errors come from the inverse of the observed information (the
Hessian of ``-LL`` by central differences of the analytic gradient).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from crmcore.analytics._special import scipy_optimize, scipy_special
from crmcore.errors import ValidationError

__all__ = [
    "BG_NBD_PARAMETERS",
    "BgNbdModel",
    "bgnbd_gradient",
    "bgnbd_log_likelihood",
    "distinct_rows",
    "fit_bgnbd",
]

FloatArray = npt.NDArray[np.float64]
BG_NBD_PARAMETERS: Final = ("r", "alpha", "a", "b")


def check_summary(x: FloatArray, t_x: FloatArray, big_t: FloatArray) -> None:
    if not (len(x) == len(t_x) == len(big_t)):
        raise ValidationError("summary", (len(x), len(t_x), len(big_t)), "lengths differ")
    if len(x) == 0:
        raise ValidationError("summary", 0, "has no customer to fit")
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise ValidationError("x", "negative or fractional", "must be whole repeat counts")
    if np.any(t_x < 0) or np.any(big_t < t_x):
        raise ValidationError("t_x", "outside 0..T", "must satisfy 0 <= t_x <= T")
    if np.any((x > 0) & (t_x <= 0)):
        raise ValidationError("t_x", 0, "must be positive for a customer with repeat purchases")


def distinct_rows(
    x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The checked summary's distinct ``(x, t_x, T)`` rows and how many customers share each.

    Customers with the same row contribute the same likelihood term, so the fits work on
    the distinct rows, weighted (with day periods, far fewer rows than customers in a large
    store).

    Raises:
        ValidationError: mismatched or impossible summaries.
    """
    check_summary(x, t_x, big_t)
    rows, weights = np.unique(np.stack([x, t_x, big_t]), axis=1, return_counts=True)
    return rows[0], rows[1], rows[2], weights.astype(np.float64)


def _terms(
    params: tuple[float, float, float, float], x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """``A1 + A2``, ``A3``, ``A4`` (``-inf`` where ``x == 0``) and their log-sum."""
    r, alpha, a, b = params
    sp = scipy_special()
    repeat = x > 0
    a12 = (
        sp.gammaln(r + x)
        - math.lgamma(r)
        + r * math.log(alpha)
        + math.lgamma(a + b)
        + sp.gammaln(b + x)
        - math.lgamma(b)
        - sp.gammaln(a + b + x)
    )
    a3 = -(r + x) * np.log(alpha + big_t)
    # b + x - 1 > 0 wherever x >= 1; elsewhere a placeholder the mask discards.
    shifted = np.where(repeat, b + x - 1.0, 1.0)
    a4 = np.where(repeat, math.log(a) - np.log(shifted) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a12, a3, a4, np.logaddexp(a3, a4)


def bgnbd_log_likelihood(
    params: tuple[float, float, float, float], x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """Each customer's BG/NBD log-likelihood at ``(r, alpha, a, b)``."""
    a12, _, _, total = _terms(params, x, t_x, big_t)
    result: FloatArray = a12 + total
    return result


def bgnbd_gradient(
    params: tuple[float, float, float, float],
    x: FloatArray,
    t_x: FloatArray,
    big_t: FloatArray,
    weights: FloatArray | None = None,
) -> FloatArray:
    """The gradient of the summed log-likelihood with respect to ``(r, alpha, a, b)``::

        d/dr     = psi(r+x) - psi(r) + ln alpha - w3 ln(alpha+T) - w4 ln(alpha+t_x)
        d/dalpha = r/alpha - (r+x) (w3/(alpha+T) + w4/(alpha+t_x))
        d/da     = psi(a+b) - psi(a+b+x) + w4/a
        d/db     = psi(a+b) + psi(b+x) - psi(b) - psi(a+b+x) - w4/(b+x-1)

    with ``w3 = exp(A3 - LL3)``, ``w4 = exp(A4 - LL3)`` the two terms' shares of their sum.
    ``weights`` counts how many customers share each row (default one each).
    """
    r, alpha, a, b = params
    sp = scipy_special()
    _, a3, a4, total = _terms(params, x, t_x, big_t)
    w3 = np.exp(a3 - total)
    w4 = np.exp(a4 - total)
    repeat = x > 0
    shifted = np.where(repeat, b + x - 1.0, 1.0)
    psi_ab = float(sp.digamma(a + b))
    psi_abx = sp.digamma(a + b + x)
    d_r = (
        sp.digamma(r + x)
        - float(sp.digamma(r))
        + math.log(alpha)
        - w3 * np.log(alpha + big_t)
        - w4 * np.log(alpha + t_x)
    )
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + big_t) + w4 / (alpha + t_x))
    d_a = psi_ab - psi_abx + w4 / a
    d_b = psi_ab + sp.digamma(b + x) - float(sp.digamma(b)) - psi_abx - w4 / shifted
    if weights is None:
        return np.array([d_r.sum(), d_alpha.sum(), d_a.sum(), d_b.sum()])
    # Elementwise products, not ``@``: a BLAS call per term is slower at these sizes and
    # spawns threads that fight over a busy machine's cores.
    return np.array([(d * weights).sum() for d in (d_r, d_alpha, d_a, d_b)])


def _hessian(
    gradient: Any, point: FloatArray, *, relative_step: float = 1e-5
) -> npt.NDArray[np.float64]:
    """The Hessian of a function by central differences of its analytic gradient."""
    size = len(point)
    hessian = np.empty((size, size))
    for i in range(size):
        step = relative_step * max(abs(point[i]), 1e-8)
        up, down = point.copy(), point.copy()
        up[i] += step
        down[i] -= step
        hessian[:, i] = (gradient(up) - gradient(down)) / (2 * step)
    result: npt.NDArray[np.float64] = (hessian + hessian.T) / 2
    return result


def standard_errors(gradient: Any, point: FloatArray, names: tuple[str, ...]) -> dict[str, float]:
    """Standard errors from the inverse observed information at the maximum (NaN where the
    information matrix is singular, e.g. a parameter at the edge of its range)."""
    information = -_hessian(gradient, point)
    try:
        covariance = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return dict.fromkeys(names, math.nan)
    variances = np.diag(covariance)
    return {
        name: math.sqrt(v) if v >= 0 else math.nan for name, v in zip(names, variances, strict=True)
    }


def maximise(
    log_likelihood: Any,
    gradient: Any,
    start: FloatArray,
    *,
    what: str,
) -> FloatArray:
    """The maximum-likelihood point, searched over ``log(params)`` with L-BFGS-B and the
    analytic gradient (chain rule: ``d/dlog p = p d/dp``). The sum is scaled by the number of
    customers only inside the optimiser, so its tolerances mean the same at any size."""
    optimize = scipy_optimize()

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(theta)
        value = -float(log_likelihood(params))
        grad = -gradient(params) * params
        if not math.isfinite(value) or not np.all(np.isfinite(grad)):
            return math.inf, np.zeros_like(theta)
        return value, grad

    scale = abs(objective(np.log(start))[0]) or 1.0
    result = optimize.minimize(
        lambda theta: tuple(v / scale for v in objective(theta)),
        np.log(start),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-20.0, 20.0)] * len(start),
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
    )
    point = np.exp(result.x)
    if not np.all(np.isfinite(point)) or not math.isfinite(float(log_likelihood(point))):
        raise ValidationError(what, "no finite maximum", "the fit did not converge")
    fitted: FloatArray = point
    return fitted


@attrs.frozen
class BgNbdModel:
    """A fitted BG/NBD model.

    Attributes:
        r, alpha: the Gamma prior of the purchase rate (``alpha`` in periods).
        a, b: the Beta prior of the drop-out probability after a purchase.
        log_likelihood: the summed log-likelihood at the fit.
        standard_errors: parameter name -> standard error.
        customers: how many customers the fit saw.
        period_days: the length of one period in days (1 for ``"day"``, 7 for ``"week"``).
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    standard_errors: Mapping[str, float]
    customers: int
    period_days: float = 1.0

    @property
    def parameters(self) -> dict[str, float]:
        """``{"r": ..., "alpha": ..., "a": ..., "b": ...}``."""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def probability_alive(self, x: FloatArray, t_x: FloatArray, big_t: FloatArray) -> FloatArray:
        """P(alive | x, t_x, T) (FHL 2005, eq. 13)::

        1 / (1 + [x > 0] a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
        """
        repeat = x > 0
        shifted = np.where(repeat, self.b + x - 1.0, 1.0)
        log_odds = (
            math.log(self.a)
            - np.log(shifted)
            + (self.r + x) * (np.log(self.alpha + big_t) - np.log(self.alpha + t_x))
        )
        odds = np.where(repeat, np.exp(np.minimum(log_odds, 700.0)), 0.0)
        alive: FloatArray = 1.0 / (1.0 + odds)
        return alive

    def expected_purchases(
        self, t: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
    ) -> FloatArray:
        """Expected purchases in the next ``t`` periods of each customer (FHL 2005, eq. 10)::

        (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))**(r+x)
                               * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
        / (1 + [x > 0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))**(r+x))
        """
        if not t >= 0:
            raise ValidationError("t", t, "must be a non-negative number of periods")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp2f1 = scipy_special().hyp2f1
        z = t / (alpha + big_t + t)
        head = (a + b + x - 1.0) / (a - 1.0)
        tail = np.exp((r + x) * (np.log(alpha + big_t) - np.log(alpha + big_t + t)))
        numerator = head * (1.0 - tail * hyp2f1(r + x, b + x, a + b + x - 1.0, z))
        result: FloatArray = numerator * self.probability_alive(x, t_x, big_t)
        return result

    def expected_purchases_new(self, t: float) -> float:
        """Expected purchases in ``t`` periods of a customer just acquired (FHL 2005, eq. 9)::

        (a+b-1)/(a-1) * [1 - (alpha/(alpha+t))**r * 2F1(r, b; a+b-1; t/(alpha+t))]
        """
        if not t >= 0:
            raise ValidationError("t", t, "must be a non-negative number of periods")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp2f1 = scipy_special().hyp2f1
        ratio = (alpha / (alpha + t)) ** r
        return float(
            (a + b - 1.0) / (a - 1.0) * (1.0 - ratio * hyp2f1(r, b, a + b - 1.0, t / (alpha + t)))
        )


def fit_bgnbd(
    x: FloatArray,
    t_x: FloatArray,
    big_t: FloatArray,
    *,
    period_days: float = 1.0,
    start: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
) -> BgNbdModel:
    """Fit BG/NBD by maximum likelihood to per-customer ``(x, t_x, T)`` in periods.

    Raises:
        ValidationError: mismatched or impossible summaries, or no finite maximum.
    """
    x, t_x, big_t = (np.asarray(v, dtype=np.float64) for v in (x, t_x, big_t))
    ux, ut, uT, counts = distinct_rows(x, t_x, big_t)

    def log_likelihood(p: FloatArray) -> float:
        return float((bgnbd_log_likelihood((p[0], p[1], p[2], p[3]), ux, ut, uT) * counts).sum())

    def gradient(p: FloatArray) -> FloatArray:
        return bgnbd_gradient((p[0], p[1], p[2], p[3]), ux, ut, uT, counts)

    point = maximise(log_likelihood, gradient, np.array(start, dtype=np.float64), what="bgnbd")
    r, alpha, a, b = (float(v) for v in point)
    return BgNbdModel(
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        log_likelihood=log_likelihood(point),
        standard_errors=standard_errors(gradient, point, BG_NBD_PARAMETERS),
        customers=len(x),
        period_days=period_days,
    )
