"""The few special functions and the optimiser the predictive models need, from SciPy.

SciPy is the optional extra ``crmcore[predictive]``: its log-gamma, digamma and Gauss
hypergeometric function (Cephes) are exact where hand-written series are not (``2F1`` near
``z = 1``), and its quasi-Newton minimiser with our analytic gradients converges to the
maximum-likelihood point to machine precision. Imported on first use, so ``import crmcore``
and every other analytic work without it.
"""

from __future__ import annotations

import importlib
import types
from typing import Final

from crmcore.errors import ConfigurationError

__all__ = ["scipy_optimize", "scipy_special"]

_HINT: Final = "the predictive models need SciPy: pip install 'crmcore[predictive]'"


def scipy_special() -> types.ModuleType:
    """``scipy.special``, or a :class:`~crmcore.errors.ConfigurationError` naming the extra."""
    return _load("scipy.special")


def scipy_optimize() -> types.ModuleType:
    """``scipy.optimize``, or a :class:`~crmcore.errors.ConfigurationError` naming the extra."""
    return _load("scipy.optimize")


def _load(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ConfigurationError(_HINT) from error
