"""Pareto/NBD: the model BG/NBD simplifies (Schmittlein, Morrison & Colombo 1987).

While alive a customer buys in a Poisson process of rate ``lambda ~ Gamma(r, alpha)``; their
lifetime is exponential with rate ``mu ~ Gamma(s, beta)``, independent of purchases (BG/NBD
lets customers drop out only right after a purchase). With ``x``, ``t_x`` and ``T`` as for
BG/NBD, the likelihood (Fader & Hardie, "A Note on Deriving the Pareto/NBD Model and Related
Expressions", 2005, eq. 22) is::

    L = G(r+x) alpha^r beta^s / G(r)
        * [ 1 / ((alpha+T)^(r+x) (beta+T)^s) + s/(r+s+x) * A0 ]

    A0 = F(t_x) - F(T),   F(u) = 2F1(r+s+x, c; r+s+x+1; |alpha-beta| / (m+u)) / (m+u)^(r+s+x)

with ``m = max(alpha, beta)`` and ``c = s+1`` if ``alpha >= beta`` else ``r+x``. Evaluated in
log space; the gradient is taken by central differences (the hypergeometric function's
derivatives in its parameters have no closed form worth the risk).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from crmcore.analytics._bgnbd import distinct_rows, maximise, standard_errors
from crmcore.analytics._special import scipy_special
from crmcore.errors import ValidationError

__all__ = ["PARETO_NBD_PARAMETERS", "ParetoNbdModel", "fit_pareto_nbd", "pareto_nbd_log_likelihood"]

FloatArray = npt.NDArray[np.float64]
PARETO_NBD_PARAMETERS: Final = ("r", "alpha", "s", "beta")


def _log_a0(
    params: tuple[float, float, float, float], x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """``log(A0)``: ``log(F(t_x) - F(T))`` computed as ``log F(t_x) + log1p(-F(T)/F(t_x))``."""
    r, alpha, s, beta = params
    hyp2f1 = scipy_special().hyp2f1
    high = max(alpha, beta)
    gap = abs(alpha - beta)
    c = s + 1.0 if alpha >= beta else r + x
    rsx = r + s + x
    log_f_tx = np.log(hyp2f1(rsx, c, rsx + 1.0, gap / (high + t_x))) - rsx * np.log(high + t_x)
    log_f_t = np.log(hyp2f1(rsx, c, rsx + 1.0, gap / (high + big_t))) - rsx * np.log(high + big_t)
    with np.errstate(divide="ignore"):
        # F is decreasing in u, so F(T) <= F(t_x); equal (t_x == T) gives log(0) = -inf.
        result: FloatArray = log_f_tx + np.log1p(-np.exp(np.minimum(log_f_t - log_f_tx, 0.0)))
    return result


def pareto_nbd_log_likelihood(
    params: tuple[float, float, float, float], x: FloatArray, t_x: FloatArray, big_t: FloatArray
) -> FloatArray:
    """Each customer's Pareto/NBD log-likelihood at ``(r, alpha, s, beta)``."""
    r, alpha, s, beta = params
    sp = scipy_special()
    head = sp.gammaln(r + x) - math.lgamma(r) + r * math.log(alpha) + s * math.log(beta)
    alive = -(r + x) * np.log(alpha + big_t) - s * np.log(beta + big_t)
    # Far from the maximum (where the optimiser may probe) 2F1 can overflow: such a point
    # gets a NaN likelihood, which the optimiser treats as "not here", never a warning.
    with np.errstate(all="ignore"):
        died = math.log(s) - np.log(r + s + x) + _log_a0(params, x, t_x, big_t)
        result: FloatArray = head + np.logaddexp(alive, died)
    return result


@attrs.frozen
class ParetoNbdModel:
    """A fitted Pareto/NBD model (same attributes and predictions as
    :class:`~crmcore.analytics.BgNbdModel`)."""

    r: float
    alpha: float
    s: float
    beta: float
    log_likelihood: float
    standard_errors: Mapping[str, float]
    customers: int
    period_days: float = 1.0

    @property
    def parameters(self) -> dict[str, float]:
        """``{"r": ..., "alpha": ..., "s": ..., "beta": ...}``."""
        return {"r": self.r, "alpha": self.alpha, "s": self.s, "beta": self.beta}

    def probability_alive(self, x: FloatArray, t_x: FloatArray, big_t: FloatArray) -> FloatArray:
        """P(alive | x, t_x, T) (Fader & Hardie 2005 note, eq. 18)::

        1 / (1 + s/(r+s+x) * (alpha+T)^(r+x) * (beta+T)^s * A0)
        """
        p = (self.r, self.alpha, self.s, self.beta)
        log_ratio = (
            math.log(self.s)
            - np.log(self.r + self.s + x)
            + (self.r + x) * np.log(self.alpha + big_t)
            + self.s * np.log(self.beta + big_t)
            + _log_a0(p, x, t_x, big_t)
        )
        alive: FloatArray = 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700.0)))
        return alive

    def expected_purchases(
        self, t: float, x: FloatArray, t_x: FloatArray, big_t: FloatArray
    ) -> FloatArray:
        """Expected purchases in the next ``t`` periods (Fader & Hardie 2005 note, eq. 21)::

        (r+x)(beta+T) / ((alpha+T)(s-1)) * [1 - ((beta+T)/(beta+T+t))^(s-1)] * P(alive)

        (the limit ``(r+x)/(alpha+T) (beta+T) ln((beta+T+t)/(beta+T))`` at ``s = 1``).
        """
        if not t >= 0:
            raise ValidationError("t", t, "must be a non-negative number of periods")
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        rate = (r + x) / (alpha + big_t)
        if abs(s - 1.0) < 1e-9:
            span = (beta + big_t) * np.log((beta + big_t + t) / (beta + big_t))
        else:
            span = (
                (beta + big_t)
                / (s - 1.0)
                * (1.0 - ((beta + big_t) / (beta + big_t + t)) ** (s - 1.0))
            )
        result: FloatArray = rate * span * self.probability_alive(x, t_x, big_t)
        return result


def fit_pareto_nbd(
    x: FloatArray,
    t_x: FloatArray,
    big_t: FloatArray,
    *,
    period_days: float = 1.0,
    start: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
) -> ParetoNbdModel:
    """Fit Pareto/NBD by maximum likelihood to per-customer ``(x, t_x, T)`` in periods.

    Raises:
        ValidationError: mismatched or impossible summaries, or no finite maximum.
    """
    x, t_x, big_t = (np.asarray(v, dtype=np.float64) for v in (x, t_x, big_t))
    ux, ut, uT, counts = distinct_rows(x, t_x, big_t)

    def log_likelihood(p: FloatArray) -> float:
        values = pareto_nbd_log_likelihood((p[0], p[1], p[2], p[3]), ux, ut, uT)
        return float((values * counts).sum())

    def gradient(p: FloatArray) -> FloatArray:
        grad = np.empty(4)
        for i in range(4):
            step = 1e-6 * p[i]
            up, down = p.copy(), p.copy()
            up[i] += step
            down[i] -= step
            grad[i] = (log_likelihood(up) - log_likelihood(down)) / (2 * step)
        return grad

    point = maximise(log_likelihood, gradient, np.array(start, dtype=np.float64), what="pareto_nbd")
    r, alpha, s, beta = (float(v) for v in point)
    return ParetoNbdModel(
        r=r,
        alpha=alpha,
        s=s,
        beta=beta,
        log_likelihood=log_likelihood(point),
        standard_errors=standard_errors(gradient, point, PARETO_NBD_PARAMETERS),
        customers=len(x),
        period_days=period_days,
    )
