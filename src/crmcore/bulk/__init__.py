"""The columnar bulk path: Arrow data validated column by column, for the import use cases.

Needs ``pyarrow`` (the ``crmcore[arrow]`` extra). Hosts call
:meth:`crmcore.Crm.import_transactions`, :meth:`~crmcore.Crm.import_interactions` and
:meth:`~crmcore.Crm.import_customers`; this package is what they use to read and check the
input. The column schemas are documented in ``docs/importing.md``.
"""

from crmcore.bulk._columns import Verdicts
from crmcore.bulk._customers import customer_columns
from crmcore.bulk._history import (
    CUSTOMER_REFERENCE_COLUMNS,
    INTERACTION_COLUMNS,
    TRANSACTION_COLUMNS,
    CustomerLookup,
    interaction_batch,
    transaction_batch,
)
from crmcore.bulk._input import record_batches
from crmcore.bulk._numbers import format_numbers
from crmcore.bulk._result import ImportResult, RejectedRow

__all__ = [
    "CUSTOMER_REFERENCE_COLUMNS",
    "INTERACTION_COLUMNS",
    "TRANSACTION_COLUMNS",
    "CustomerLookup",
    "ImportResult",
    "RejectedRow",
    "Verdicts",
    "customer_columns",
    "format_numbers",
    "interaction_batch",
    "record_batches",
    "transaction_batch",
]
