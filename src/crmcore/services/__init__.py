"""Use cases over the ports: register, update, record, change stage, erase, look up."""

from crmcore.services._analytics import Analytics, CustomerRefresh, SegmentRun, StageMove
from crmcore.services._crm import BulkResult, Crm, Customer360, RecordResult

__all__ = [
    "Analytics",
    "BulkResult",
    "Crm",
    "Customer360",
    "CustomerRefresh",
    "RecordResult",
    "SegmentRun",
    "StageMove",
]
