"""Predictive use cases: fit BG/NBD and Gamma-Gamma on the store's purchases, then predict.

The purchases are read once, column-wise, through the store's transfer port (every store has
one), summarised per customer in purchase periods (:mod:`crmcore.analytics._periods`) and fitted
in numpy/SciPy (:mod:`crmcore.analytics._bgnbd`, :mod:`crmcore.analytics._gammagamma`). A fit is
a value: it keeps its summary, so predictions and explanations need no further reads.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from crmcore._epoch import to_us
from crmcore.analytics._bgnbd import BgNbdModel, fit_bgnbd
from crmcore.analytics._gammagamma import GammaGammaModel, fit_gamma_gamma
from crmcore.analytics._paretonbd import ParetoNbdModel, fit_pareto_nbd
from crmcore.analytics._periods import PERIODS, Period, RepeatSummary, summarise_purchases
from crmcore.analytics.columns import TRANSACTION_KIND_CODES
from crmcore.domain import (
    AuditAction,
    AuditEntity,
    CrmNumber,
    TransactionKind,
    currency_exponent,
)
from crmcore.domain._checks import aware_utc
from crmcore.errors import ConfigurationError, ValidationError
from crmcore.ports.transfer import TransferUnitOfWork
from crmcore.services._context import ServiceContext

__all__ = ["GammaGammaFit", "HoldoutRow", "Predictions", "PurchaseFit"]

FloatArray = npt.NDArray[np.float64]
_CHUNK: Final = 200_000
_PURCHASE: Final = TRANSACTION_KIND_CODES[TransactionKind.PURCHASE]


@attrs.frozen(eq=False)
class PurchaseFit:
    """A purchase model (BG/NBD or Pareto/NBD) fitted on a store, with its summary.

    Row ``i`` of every array this returns belongs to ``numbers[i]`` (CRM number text,
    ascending): the customers with at least one purchase before the end of observation.
    """

    model: BgNbdModel | ParetoNbdModel
    summary: RepeatSummary

    @property
    def numbers(self) -> npt.NDArray[np.object_]:
        """CRM number text of each row."""
        return self.summary.numbers

    def probability_alive(self) -> FloatArray:
        """P(alive) of each customer at the end of observation."""
        s = self.summary
        return self.model.probability_alive(s.x, s.t_x, s.big_t)

    def expected_purchases(self, periods: float) -> FloatArray:
        """Expected purchase occasions of each customer in the next ``periods`` periods."""
        s = self.summary
        return self.model.expected_purchases(periods, s.x, s.t_x, s.big_t)

    def explain(self, number: CrmNumber | str, *, periods: float = 30.0) -> dict[str, Any]:
        """Why a customer got their predictions: inputs, parameters and outputs, like
        :meth:`~crmcore.services.Analytics.rfm`'s explanations.

        Raises:
            ValidationError: the customer has no purchase in the summary.
        """
        s = self.summary
        text = number.value if isinstance(number, CrmNumber) else str(number)
        i = s.row(text)
        one = (s.x[i : i + 1], s.t_x[i : i + 1], s.big_t[i : i + 1])
        return {
            "customer": text,
            "period": s.period,
            "x": int(s.x[i]),
            "t_x": float(s.t_x[i]),
            "T": float(s.big_t[i]),
            "parameters": self.model.parameters,
            "probability_alive": float(self.model.probability_alive(*one)[0]),
            "expected_purchases": {
                "periods": periods,
                "value": float(self.model.expected_purchases(periods, *one)[0]),
            },
        }


@attrs.frozen(eq=False)
class GammaGammaFit:
    """A Gamma-Gamma spend model fitted on a store's repeat purchases."""

    model: GammaGammaModel
    summary: RepeatSummary

    def expected_spend(self) -> FloatArray:
        """Expected mean spend per future purchase of each customer of the summary, in
        reporting-currency units (the population mean for customers without repeats)."""
        return self.model.expected_spend(self.summary.x, self.summary.m)


@attrs.frozen
class HoldoutRow:
    """One calibration-frequency bucket of a holdout test.

    Attributes:
        repeat_purchases: ``x`` in the calibration period (the last bucket is "this or more").
        customers: how many customers fall in the bucket.
        actual: their mean purchase occasions in the holdout period.
        predicted: the model's mean expectation for them.
    """

    repeat_purchases: int
    customers: int
    actual: float
    predicted: float


class Predictions:
    """The predictive use cases of :class:`~crmcore.services.Analytics` (a mixin)."""

    context: ServiceContext

    def purchase_summary(
        self,
        as_of: dt.datetime | None = None,
        *,
        period: Period = "day",
        tz: str | dt.tzinfo = "UTC",
    ) -> RepeatSummary:
        """The repeat-purchase summary ``(x, t_x, T, m)`` of every customer with a purchase at
        or before ``as_of`` (default now), in local calendar ``period`` s of ``tz``."""
        end = self.context.now() if as_of is None else aware_utc("as_of", as_of)
        return self._summary(end, period, tz)

    def fit_bgnbd(
        self,
        as_of: dt.datetime | None = None,
        *,
        period: Period = "day",
        tz: str | dt.tzinfo = "UTC",
        calibration_end: dt.datetime | None = None,
    ) -> PurchaseFit:
        """Fit BG/NBD to the purchases at or before ``calibration_end`` (default ``as_of``,
        default now) by maximum likelihood.

        Raises:
            ValidationError: no customer has a purchase, or the fit has no finite maximum.
            ConfigurationError: SciPy is missing (``pip install 'crmcore[predictive]'``).
        """
        summary = self._calibration(as_of, calibration_end, period, tz)
        model = fit_bgnbd(summary.x, summary.t_x, summary.big_t, period_days=PERIODS[period])
        return PurchaseFit(model=model, summary=summary)

    def fit_pareto_nbd(
        self,
        as_of: dt.datetime | None = None,
        *,
        period: Period = "day",
        tz: str | dt.tzinfo = "UTC",
        calibration_end: dt.datetime | None = None,
    ) -> PurchaseFit:
        """Fit Pareto/NBD instead of BG/NBD (same data, same predictions; slower to fit:
        its likelihood needs a hypergeometric function per customer and a numerical
        gradient). Arguments and errors as :meth:`fit_bgnbd`."""
        summary = self._calibration(as_of, calibration_end, period, tz)
        model = fit_pareto_nbd(summary.x, summary.t_x, summary.big_t, period_days=PERIODS[period])
        return PurchaseFit(model=model, summary=summary)

    def fit_gamma_gamma(
        self,
        as_of: dt.datetime | None = None,
        *,
        period: Period = "day",
        tz: str | dt.tzinfo = "UTC",
        calibration_end: dt.datetime | None = None,
    ) -> GammaGammaFit:
        """Fit the Gamma-Gamma spend model to customers with repeat purchases at or before
        ``calibration_end`` (default ``as_of``, default now).

        Raises:
            ValidationError: fewer than two customers with repeat purchases of positive value.
        """
        summary = self._calibration(as_of, calibration_end, period, tz)
        return GammaGammaFit(model=fit_gamma_gamma(summary.x, summary.m), summary=summary)

    def customer_lifetime_value(
        self,
        purchases: PurchaseFit,
        spend: GammaGammaFit,
        *,
        horizon_days: float = 365.0,
        step_days: float = 30.0,
        discount_rate: float = 0.01,
        margin: float = 1.0,
    ) -> FloatArray:
        """Discounted expected value of each customer of ``purchases`` over ``horizon_days``::

            margin * spend * sum_k (E[Y(k s)] - E[Y((k-1) s)]) / (1 + discount_rate) ** k

        with ``s = step_days`` (a "month" of 30 days by default), ``k = 1 .. horizon/s``,
        ``spend`` the Gamma-Gamma expected mean spend and ``E[Y(t)]`` the BG/NBD conditional
        expected purchases. In reporting-currency units.

        Raises:
            ValidationError: the two fits were made on different summaries, or a bad argument.
        """
        if purchases.summary is not spend.summary and not (
            np.array_equal(purchases.numbers, spend.summary.numbers)
            and np.array_equal(purchases.summary.x, spend.summary.x)
        ):
            raise ValidationError("spend", "another summary", "must be fitted on the same data")
        for name, days in (("horizon_days", horizon_days), ("step_days", step_days)):
            if not (isinstance(days, int | float) and math.isfinite(days) and days > 0):
                raise ValidationError(name, days, "must be a positive number of days")
        if not (isinstance(discount_rate, int | float) and 0 <= discount_rate < 10):
            raise ValidationError("discount_rate", discount_rate, "must lie in [0, 10)")
        if not (isinstance(margin, int | float) and math.isfinite(margin)):
            raise ValidationError("margin", margin, "must be a finite number")
        unit = purchases.model.period_days
        step = step_days / unit
        steps = round(horizon_days / step_days)
        value = np.zeros(len(purchases.numbers))
        before = np.zeros(len(purchases.numbers))
        for k in range(1, steps + 1):
            cumulative = purchases.expected_purchases(k * step)
            value += (cumulative - before) / (1.0 + discount_rate) ** k
            before = cumulative
        result: FloatArray = margin * spend.expected_spend() * value
        return result

    def bgnbd_holdout(
        self,
        calibration_end: dt.datetime,
        as_of: dt.datetime | None = None,
        *,
        period: Period = "day",
        tz: str | dt.tzinfo = "UTC",
        buckets: int = 7,
    ) -> list[HoldoutRow]:
        """Fit on the purchases up to ``calibration_end`` and compare, per calibration
        frequency bucket (``0 .. buckets``, the last "or more"), the mean purchase occasions
        each bucket made in the holdout period ``(calibration_end, as_of]`` with the model's
        prediction: the conditional-expectation check of Fader, Hardie & Lee (2005), Fig. 5."""
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
            raise ValidationError("buckets", buckets, "must be a positive integer")
        end = self.context.now() if as_of is None else aware_utc("as_of", as_of)
        fit = self.fit_bgnbd(end, period=period, tz=tz, calibration_end=calibration_end)
        whole = self._summary(end, period, tz)
        calibration = fit.summary
        # Holdout occasions = occasions up to as_of minus those up to the calibration end.
        rows = np.searchsorted(whole.numbers, calibration.numbers)
        actual = whole.x[rows] - calibration.x
        length = float((to_us(end) - to_us(calibration.end)) / (PERIODS[period] * 86_400_000_000))
        predicted = fit.expected_purchases(length)
        bucket = np.minimum(calibration.x, buckets).astype(np.int64)
        report = []
        for b in range(buckets + 1):
            members = bucket == b
            n = int(members.sum())
            report.append(
                HoldoutRow(
                    repeat_purchases=b,
                    customers=n,
                    actual=float(actual[members].mean()) if n else math.nan,
                    predicted=float(predicted[members].mean()) if n else math.nan,
                )
            )
        return report

    # -- reading -------------------------------------------------------------------------------

    def _calibration(
        self,
        as_of: dt.datetime | None,
        calibration_end: dt.datetime | None,
        period: Period,
        tz: str | dt.tzinfo,
    ) -> RepeatSummary:
        end = self.context.now() if as_of is None else aware_utc("as_of", as_of)
        if calibration_end is not None:
            cut = aware_utc("calibration_end", calibration_end)
            if cut > end:
                raise ValidationError("calibration_end", calibration_end, "is after as_of")
            end = cut
        return self._summary(end, period, tz)

    def _summary(self, end: dt.datetime, period: Period, tz: str | dt.tzinfo) -> RepeatSummary:
        if period not in PERIODS:
            raise ValidationError("period", period, f"must be one of {sorted(PERIODS)}")
        self.context.authorize(AuditAction.PREDICT, AuditEntity.CUSTOMER)
        end_us = to_us(end)
        customers: list[npt.NDArray[np.object_]] = []
        instants: list[npt.NDArray[np.int64]] = []
        values: list[npt.NDArray[np.int64]] = []
        with self.context.reading() as uow:
            if not isinstance(uow, TransferUnitOfWork):
                raise ConfigurationError(
                    f"{type(self.context.store).__name__} offers no transfer port to read "
                    "purchases column-wise"
                )
            for chunk in uow.transfer.transaction_chunks(_CHUNK):
                batch = chunk.batch
                keep = (batch.kind == _PURCHASE) & (batch.occurred_us <= end_us)
                customers.append(batch.customer[keep])
                instants.append(batch.occurred_us[keep])
                values.append(batch.reporting_minor[keep])
        if not customers or not sum(len(c) for c in customers):
            raise ValidationError("as_of", end, "no customer has a purchase by then")
        exponent = currency_exponent(self.context.store.reporting_currency)
        summary = summarise_purchases(
            np.concatenate(customers),
            np.concatenate(instants),
            np.concatenate(values),
            end=end,
            period=period,
            tz=tz,
            minor_per_unit=10**exponent,
        )
        # Profiling every customer: audited once per read, with the customers summarised.
        with self.context.unit() as uow:
            self.context.audit(
                uow, AuditAction.PREDICT, AuditEntity.CUSTOMER, rows=len(summary.numbers)
            )
        return summary
