"""BG/NBD and Gamma-Gamma: the likelihoods against the published formulas, the gradients
against finite differences, the fits against data simulated from the models, and the
purchase-period summary on hand-made histories."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest

pytest.importorskip("scipy", reason="the predictive models need the [predictive] extra")

from crmcore import Crm, InMemoryStore, Money, Transaction
from crmcore.analytics import (
    bgnbd_log_likelihood,
    fit_bgnbd,
    fit_gamma_gamma,
    summarise_purchases,
)
from crmcore.analytics._bgnbd import bgnbd_gradient
from crmcore.analytics._gammagamma import (
    gamma_gamma_gradient,
    gamma_gamma_log_likelihood,
)
from crmcore.errors import ValidationError
from crmcore.services import Analytics

RNG_SEED = 20261202


def _published_bgnbd(
    r: float, alpha: float, a: float, b: float, x: int, tx: float, t: float
) -> float:
    """FHL (2005) eq. 6 as printed, with plain gamma and beta functions (small x only)."""

    def beta(p: float, q: float) -> float:
        return math.gamma(p) * math.gamma(q) / math.gamma(p + q)

    common = math.gamma(r + x) * alpha**r / math.gamma(r)
    likelihood = beta(a, b + x) / beta(a, b) * common / (alpha + t) ** (r + x)
    if x > 0:
        likelihood += beta(a + 1, b + x - 1) / beta(a, b) * common / (alpha + tx) ** (r + x)
    return math.log(likelihood)


def _random_summary(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
    x = rng.integers(0, 8, size).astype(float)
    big_t = rng.uniform(1, 60, size)
    t_x = np.where(x > 0, rng.uniform(0.1, 1, size) * big_t, 0.0)
    return x, t_x, big_t


def test_bgnbd_log_likelihood_equals_the_published_formula() -> None:
    rng = np.random.default_rng(RNG_SEED)
    x, t_x, big_t = _random_summary(rng, 200)
    for params in [(0.24, 4.4, 0.79, 2.4), (1.5, 0.3, 3.0, 0.7), (0.05, 40.0, 0.2, 9.0)]:
        ours = bgnbd_log_likelihood(params, x, t_x, big_t)
        direct = [
            _published_bgnbd(*params, int(xi), ti, bi)
            for xi, ti, bi in zip(x, t_x, big_t, strict=True)
        ]
        np.testing.assert_allclose(ours, direct, rtol=1e-9)


@pytest.mark.parametrize("params", [(0.24, 4.4, 0.79, 2.4), (2.0, 0.5, 1.2, 6.0)])
def test_bgnbd_gradient_equals_finite_differences(params: tuple[float, ...]) -> None:
    x, t_x, big_t = _random_summary(np.random.default_rng(RNG_SEED), 500)
    analytic = bgnbd_gradient(params, x, t_x, big_t)  # type: ignore[arg-type]
    for i in range(4):
        step = 1e-6 * params[i]
        up = tuple(v + step if j == i else v for j, v in enumerate(params))
        down = tuple(v - step if j == i else v for j, v in enumerate(params))
        numeric = (
            bgnbd_log_likelihood(up, x, t_x, big_t).sum()  # type: ignore[arg-type]
            - bgnbd_log_likelihood(down, x, t_x, big_t).sum()  # type: ignore[arg-type]
        ) / (2 * step)
        assert analytic[i] == pytest.approx(numeric, rel=1e-5)


def _simulate_bgnbd(
    rng: np.random.Generator, size: int, r: float, alpha: float, a: float, b: float, t: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers acquired at 0, observed until ``t``: purchase rate Gamma(r, alpha), drop-out
    probability Beta(a, b) after each purchase (the model's own story)."""
    rates = rng.gamma(r, 1 / alpha, size)
    drops = rng.beta(a, b, size)
    x = np.zeros(size)
    t_x = np.zeros(size)
    for i in range(size):
        now = 0.0
        while True:
            now += rng.exponential(1 / rates[i])
            if now > t:
                break
            x[i] += 1
            t_x[i] = now
            if rng.random() < drops[i]:
                break
    return x, t_x, np.full(size, t)


def test_bgnbd_fit_recovers_the_parameters_it_was_simulated_with() -> None:
    truth = {"r": 0.8, "alpha": 6.0, "a": 0.6, "b": 2.5}
    x, t_x, big_t = _simulate_bgnbd(np.random.default_rng(RNG_SEED), 20_000, *truth.values(), 52.0)
    model = fit_bgnbd(x, t_x, big_t)
    for name, value in truth.items():
        fitted = model.parameters[name]
        assert abs(fitted - value) < 4 * model.standard_errors[name], (name, fitted, value)
    assert model.customers == 20_000


def test_gamma_gamma_likelihood_equals_the_published_formula_and_its_gradient() -> None:
    rng = np.random.default_rng(RNG_SEED)
    x = rng.integers(1, 10, 300).astype(float)
    m = rng.uniform(5, 80, 300)
    p, q, v = 6.2, 3.7, 15.4
    direct = [
        math.lgamma(p * xi + q)
        - math.lgamma(p * xi)
        - math.lgamma(q)
        + math.log(v**q * mi ** (p * xi - 1) * xi ** (p * xi) / (v + mi * xi) ** (p * xi + q))
        for xi, mi in zip(x, m, strict=True)
    ]
    np.testing.assert_allclose(gamma_gamma_log_likelihood((p, q, v), x, m), direct, rtol=1e-9)
    analytic = gamma_gamma_gradient((p, q, v), x, m)
    for i, base in enumerate((p, q, v)):
        step = 1e-6 * base
        up = tuple(w + step if j == i else w for j, w in enumerate((p, q, v)))
        down = tuple(w - step if j == i else w for j, w in enumerate((p, q, v)))
        numeric = (
            gamma_gamma_log_likelihood(up, x, m).sum()  # type: ignore[arg-type]
            - gamma_gamma_log_likelihood(down, x, m).sum()  # type: ignore[arg-type]
        ) / (2 * step)
        assert analytic[i] == pytest.approx(numeric, rel=1e-5)


def test_gamma_gamma_fit_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(RNG_SEED)
    p, q, v = 4.0, 3.0, 20.0
    size = 20_000
    x = rng.integers(1, 8, size).astype(float)
    nu = rng.gamma(q, 1 / v, size)
    # The mean of x purchases of Gamma(p, nu) values is Gamma(p x, nu x).
    m = rng.gamma(p * x, 1 / (nu * x))
    model = fit_gamma_gamma(x, m)
    for name, value in {"p": p, "q": q, "v": v}.items():
        assert abs(model.parameters[name] - value) < 4 * model.standard_errors[name], name
    assert abs(model.frequency_correlation) < 0.05
    expected = model.expected_spend(np.array([0.0, 1.0]), np.array([0.0, 50.0]))
    assert expected[0] == pytest.approx(model.population_mean_spend)


def test_fits_refuse_impossible_summaries() -> None:
    with pytest.raises(ValidationError, match="t_x"):
        fit_bgnbd(np.array([1.0]), np.array([5.0]), np.array([4.0]))
    with pytest.raises(ValidationError, match="repeat counts"):
        fit_bgnbd(np.array([1.5]), np.array([1.0]), np.array([4.0]))
    with pytest.raises(ValidationError, match="no customer"):
        fit_bgnbd(np.array([]), np.array([]), np.array([]))
    with pytest.raises(ValidationError, match="at least two"):
        fit_gamma_gamma(np.array([0.0, 3.0]), np.array([0.0, 10.0]))
    with pytest.raises(ValidationError, match="m"):
        fit_gamma_gamma(np.array([1.0, 3.0]), np.array([-1.0, 10.0]))


def _us(*args: int, tz: dt.tzinfo = dt.UTC) -> int:
    return int(dt.datetime(*args, tzinfo=tz).timestamp() * 1_000_000)


def test_summary_counts_local_days_and_weeks() -> None:
    customers = np.array(["A", "A", "A", "A", "B"], dtype=object)
    # A: two orders on 1 March (Berlin), one late on 2 March UTC = 3 March in Berlin, one a
    # week later; B: one order.
    occurred = np.array(
        [
            _us(2025, 3, 1, 9),
            _us(2025, 3, 1, 20),
            _us(2025, 3, 2, 23, 30),
            _us(2025, 3, 9, 12),
            _us(2025, 3, 5, 12),
        ],
        dtype=np.int64,
    )
    value = np.array([1000, 500, 0, 2000, 700], dtype=np.int64)
    end = dt.datetime(2025, 3, 31, 12, tzinfo=dt.UTC)
    utc = summarise_purchases(
        customers, occurred, value, end=end, period="day", tz="UTC", minor_per_unit=100
    )
    assert utc.x.tolist() == [2.0, 0.0]  # 1, 2 and 9 March
    assert utc.t_x.tolist() == [8.0, 0.0]
    assert utc.big_t.tolist() == [30.0, 26.0]
    assert utc.m.tolist() == [10.0, 0.0]  # (0 + 20.00) / 2 repeat days
    berlin = summarise_purchases(
        customers, occurred, value, end=end, period="day", tz="Europe/Berlin", minor_per_unit=100
    )
    assert berlin.t_x.tolist() == [8.0, 0.0]  # 1, 3 and 9 March local
    weeks = summarise_purchases(
        customers, occurred, value, end=end, period="week", tz="UTC", minor_per_unit=100
    )
    # 1-2 March are Saturday-Sunday of one Monday-based week; 9 March (Sunday) is the next.
    assert weeks.x.tolist() == [1.0, 0.0]
    assert weeks.t_x.tolist() == [1.0, 0.0]
    with pytest.raises(ValidationError, match="time zone"):
        summarise_purchases(
            customers, occurred, value, end=end, period="day", tz="Mars/Olympus", minor_per_unit=1
        )
    with pytest.raises(ValidationError, match="period"):
        summarise_purchases(
            customers,
            occurred,
            value,
            end=end,
            period="month",
            tz="UTC",
            minor_per_unit=1,  # type: ignore[arg-type]
        )


def test_daylight_saving_days_are_cut_at_local_midnight() -> None:
    # New York moves from EST (-5) to EDT (-4) at 02:00 on 9 March 2025. Local purchase
    # times: 8 March 23:30 EST, 9 March 23:30 EDT, 10 March 00:30 EDT: three local days, but
    # only two UTC days, and two days under a fixed -5 offset.
    occurred = np.array(
        [_us(2025, 3, 9, 4, 30), _us(2025, 3, 10, 3, 30), _us(2025, 3, 10, 4, 30)],
        dtype=np.int64,
    )

    def summary(tz: str) -> tuple[list[float], list[float]]:
        s = summarise_purchases(
            np.array(["A", "A", "A"], dtype=object),
            occurred,
            np.array([1, 1, 1], dtype=np.int64),
            end=dt.datetime(2025, 3, 12, tzinfo=dt.UTC),
            period="day",
            tz=tz,
            minor_per_unit=1,
        )
        return s.x.tolist(), s.t_x.tolist()

    assert summary("America/New_York") == ([2.0], [2.0])
    assert summary("UTC") == ([1.0], [1.0])
    assert summary("Etc/GMT+5") == ([1.0], [1.0])


def test_free_purchases_count_and_refunds_do_not() -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"))
    ann = crm.register("Ann Lee")
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    for day, amount, kind in [(0, "10", "purchase"), (3, "0", "purchase"), (5, "4", "refund")]:
        crm.record_transaction(
            Transaction(ann.number, start + dt.timedelta(days=day), kind, Money(amount, "EUR"))
        )
    summary = Analytics(crm).purchase_summary(start + dt.timedelta(days=10))
    assert summary.x.tolist() == [1.0]  # the free promotional order is a purchase occasion
    assert summary.t_x.tolist() == [3.0]
    assert summary.m.tolist() == [0.0]
    assert crm.customer_360(ann.number).aggregate.purchase_count == 2
    assert Decimal(0) == Money("0", "EUR").amount


def test_analytics_fit_validates_its_arguments() -> None:
    crm = Crm(InMemoryStore(reporting_currency="EUR"))
    analytics = Analytics(crm)
    end = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ValidationError, match="no customer has a purchase"):
        analytics.fit_bgnbd(end)
    with pytest.raises(ValidationError, match="after as_of"):
        analytics.fit_bgnbd(end, calibration_end=end + dt.timedelta(days=1))
    with pytest.raises(ValidationError, match="period"):
        analytics.purchase_summary(end, period="fortnight")  # type: ignore[arg-type]


def test_a_missing_scipy_is_a_configuration_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from crmcore.errors import ConfigurationError

    monkeypatch.setitem(sys.modules, "scipy.special", None)
    with pytest.raises(ConfigurationError, match=r"crmcore\[predictive\]"):
        fit_bgnbd(np.array([1.0]), np.array([1.0]), np.array([2.0]))


def _published_pareto_nbd(
    r: float, alpha: float, s: float, beta: float, x: int, tx: float, t: float
) -> float:
    """Fader & Hardie (2005 note) eq. 22 with plain arithmetic (small x only)."""
    from scipy.special import hyp2f1

    high, gap = max(alpha, beta), abs(alpha - beta)
    c = s + 1 if alpha >= beta else r + x
    rsx = r + s + x

    def f(u: float) -> float:
        return float(hyp2f1(rsx, c, rsx + 1, gap / (high + u)) / (high + u) ** rsx)

    head = math.gamma(r + x) * alpha**r * beta**s / math.gamma(r)
    body = 1 / ((alpha + t) ** (r + x) * (beta + t) ** s) + s / rsx * (f(tx) - f(t))
    return math.log(head * body)


@pytest.mark.parametrize("params", [(0.55, 10.6, 0.61, 11.7), (1.2, 5.0, 0.8, 2.0)])
def test_pareto_nbd_log_likelihood_equals_the_published_formula(params: tuple[float, ...]) -> None:
    from crmcore.analytics import fit_pareto_nbd
    from crmcore.analytics._paretonbd import pareto_nbd_log_likelihood

    x, t_x, big_t = _random_summary(np.random.default_rng(RNG_SEED), 200)
    ours = pareto_nbd_log_likelihood(params, x, t_x, big_t)  # type: ignore[arg-type]
    direct = [
        _published_pareto_nbd(*params, int(xi), ti, bi)
        for xi, ti, bi in zip(x, t_x, big_t, strict=True)
    ]
    np.testing.assert_allclose(ours, direct, rtol=1e-8)
    model = fit_pareto_nbd(x, t_x, big_t)
    alive = model.probability_alive(x, t_x, big_t)
    assert np.all((alive > 0) & (alive <= 1))
    assert np.all(alive[x == 0] > alive.min() - 1e-12)
    assert np.all(np.diff(model.expected_purchases(1.0, x[:1], t_x[:1], big_t[:1])) >= 0)
