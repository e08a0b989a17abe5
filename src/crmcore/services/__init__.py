"""Use cases over the ports: register, update, record, change stage, erase, look up."""

from crmcore.services._crm import BulkResult, Crm, Customer360, RecordResult

__all__ = ["BulkResult", "Crm", "Customer360", "RecordResult"]
