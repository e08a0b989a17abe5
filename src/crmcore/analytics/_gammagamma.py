"""Gamma-Gamma: what a returning customer's purchases are worth on average.

Fader, Hardie & Lee, "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis", Journal
of Marketing Research 42(4), 2005, and Fader & Hardie, "The Gamma-Gamma Model of Monetary
Value" (2013). A customer's purchase values are Gamma(p, nu) with ``nu ~ Gamma(q, v)``; fitted
on customers with ``x >= 1`` repeat purchases of mean value ``m``::

    LL = lnG(px+q) - lnG(px) - lnG(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(v + x m)

The model assumes spend is independent of purchase frequency; check it (the correlation of
``x`` and ``m`` over the fitted customers, :attr:`GammaGammaModel.frequency_correlation`)
before trusting a CLV built on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from crmcore.analytics._bgnbd import maximise, standard_errors
from crmcore.analytics._special import scipy_special
from crmcore.errors import ValidationError

__all__ = [
    "GAMMA_GAMMA_PARAMETERS",
    "GammaGammaModel",
    "fit_gamma_gamma",
    "gamma_gamma_gradient",
    "gamma_gamma_log_likelihood",
]

FloatArray = npt.NDArray[np.float64]
GAMMA_GAMMA_PARAMETERS: Final = ("p", "q", "v")


def gamma_gamma_log_likelihood(
    params: tuple[float, float, float], x: FloatArray, m: FloatArray
) -> FloatArray:
    """Each customer's Gamma-Gamma log-likelihood at ``(p, q, v)`` (``x >= 1``, ``m > 0``)."""
    p, q, v = params
    sp = scipy_special()
    px = p * x
    result: FloatArray = (
        sp.gammaln(px + q)
        - sp.gammaln(px)
        - math.lgamma(q)
        + q * math.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + x * m)
    )
    return result


def gamma_gamma_gradient(
    params: tuple[float, float, float], x: FloatArray, m: FloatArray
) -> FloatArray:
    """The gradient of the summed log-likelihood with respect to ``(p, q, v)``::

    d/dp = x (psi(px+q) - psi(px) + ln m + ln x - ln(v + x m))
    d/dq = psi(px+q) - psi(q) + ln v - ln(v + x m)
    d/dv = q/v - (px+q)/(v + x m)
    """
    p, q, v = params
    sp = scipy_special()
    px = p * x
    psi = sp.digamma(px + q)
    spend = np.log(v + x * m)
    d_p = x * (psi - sp.digamma(px) + np.log(m) + np.log(x) - spend)
    d_q = psi - float(sp.digamma(q)) + math.log(v) - spend
    d_v = q / v - (px + q) / (v + x * m)
    return np.array([d_p.sum(), d_q.sum(), d_v.sum()])


@attrs.frozen
class GammaGammaModel:
    """A fitted Gamma-Gamma spend model.

    Attributes:
        p, q, v: the parameters (``v`` in the unit of the spend values it was fitted on).
        log_likelihood: the summed log-likelihood at the fit.
        standard_errors: parameter name -> standard error.
        customers: how many customers (``x >= 1``) the fit saw.
        frequency_correlation: Pearson correlation of ``x`` and ``m`` over them (the model
            assumes none; far from 0 the spend predictions are biased).
    """

    p: float
    q: float
    v: float
    log_likelihood: float
    standard_errors: Mapping[str, float]
    customers: int
    frequency_correlation: float

    @property
    def parameters(self) -> dict[str, float]:
        """``{"p": ..., "q": ..., "v": ...}``."""
        return {"p": self.p, "q": self.q, "v": self.v}

    @property
    def population_mean_spend(self) -> float:
        """Mean spend per purchase of the population, ``p v / (q - 1)`` (infinite for
        ``q <= 1``), the expectation for a customer without repeat purchases."""
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else math.inf

    def expected_spend(self, x: FloatArray, m: FloatArray) -> FloatArray:
        """Expected mean spend per future purchase of each customer::

            p (v + x m) / (p x + q - 1)

        a weighted mean of the population mean and the customer's own mean ``m`` (``x = 0``
        gives the population mean).
        """
        x = np.asarray(x, dtype=np.float64)
        m = np.where(x > 0, np.asarray(m, dtype=np.float64), 0.0)
        result: FloatArray = self.p * (self.v + x * m) / (self.p * x + self.q - 1.0)
        return result


def fit_gamma_gamma(
    x: FloatArray, m: FloatArray, *, start: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> GammaGammaModel:
    """Fit Gamma-Gamma to customers with ``x >= 1`` repeat purchases and mean value ``m``.

    Customers with ``x == 0`` are left out (they have no repeat spend to learn from), and
    so are returning customers whose repeat purchases were all free (``m == 0``: the Gamma
    spend distribution has no mass at zero).

    Raises:
        ValidationError: fewer than two returning customers with a positive mean value.
    """
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if len(x) != len(m):
        raise ValidationError("m", len(m), f"has another length than x ({len(x)})")
    if np.any(~np.isfinite(m)) or np.any(m < 0):
        raise ValidationError("m", "negative or not finite", "must be mean values >= 0")
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < 2:
        raise ValidationError(
            "x", len(x), "needs at least two customers with repeat purchases of positive value"
        )

    def log_likelihood(p: FloatArray) -> float:
        return float(gamma_gamma_log_likelihood((p[0], p[1], p[2]), x, m).sum())

    def gradient(p: FloatArray) -> FloatArray:
        return gamma_gamma_gradient((p[0], p[1], p[2]), x, m)

    # Start v near the spend scale: the likelihood surface is flat far from it.
    first = (start[0], start[1], start[2] * float(np.median(m)))
    point = maximise(log_likelihood, gradient, np.array(first), what="gamma_gamma")
    p, q, v = (float(value) for value in point)
    correlation = float(np.corrcoef(x, m)[0, 1]) if np.ptp(x) > 0 and np.ptp(m) > 0 else 0.0
    return GammaGammaModel(
        p=p,
        q=q,
        v=v,
        log_likelihood=log_likelihood(point),
        standard_errors=standard_errors(gradient, point, GAMMA_GAMMA_PARAMETERS),
        customers=len(x),
        frequency_correlation=correlation,
    )
