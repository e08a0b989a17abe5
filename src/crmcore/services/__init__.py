"""Use cases over the ports: register, update, record, change stage, erase, look up, score,
segment and reclassify; export a subject's data and apply retention rules."""

from crmcore.services._analytics import Analytics, CustomerRefresh, SegmentRun, StageMove
from crmcore.services._context import ServiceContext
from crmcore.services._crm import Crm, CustomerFields
from crmcore.services._predictive import GammaGammaFit, HoldoutRow, PurchaseFit
from crmcore.services._results import BulkResult, Customer360, RecordResult, Registration
from crmcore.services._retention import RetentionReport, RuleOutcome
from crmcore.services._subject import EXPORT_SCHEMA, EXPORT_VERSION, export_json_schema

__all__ = [
    "EXPORT_SCHEMA",
    "EXPORT_VERSION",
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
    "RetentionReport",
    "RuleOutcome",
    "SegmentRun",
    "ServiceContext",
    "StageMove",
    "export_json_schema",
]
