"""Use cases over the ports: register, update, record, change stage, erase, look up, score,
segment and reclassify."""

from crmcore.services._analytics import Analytics, CustomerRefresh, SegmentRun, StageMove
from crmcore.services._context import ServiceContext
from crmcore.services._crm import Crm, CustomerFields
from crmcore.services._predictive import GammaGammaFit, HoldoutRow, PurchaseFit
from crmcore.services._results import BulkResult, Customer360, RecordResult, Registration

__all__ = [
    "Analytics",
    "BulkResult",
    "Crm",
    "Customer360",
    "CustomerFields",
    "CustomerRefresh",
    "GammaGammaFit",
    "HoldoutRow",
    "PurchaseFit",
    "RecordResult",
    "Registration",
    "SegmentRun",
    "ServiceContext",
    "StageMove",
]
