"""Validated, numbered customers, column-wise: what the customer import hands a store.

:meth:`crmcore.Crm.import_customers` validates Arrow data column by column with the per-row
API's rules, numbers the new customers with one allocator call and gives the store one
:class:`CustomerBatch` per chunk. A store's customer repository stores it set-wise
(``add_batch``); :meth:`CustomerBatch.customers` builds the domain objects, without running
their validators a second time, for stores that keep objects.

Every value in a batch has passed validation: numbers are canonical under the store's scheme,
instants are UTC microseconds, text is ``None`` or stripped text, collections are immutable.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from crmcore._epoch import from_us, to_us
from crmcore.domain import Customer, PersonName
from crmcore.domain.numbers import trusted_numbers
from crmcore.errors import ValidationError

__all__ = ["CustomerBatch"]

Int64Array = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

_NO_ATTRIBUTES: Final[MappingProxyType[str, Any]] = MappingProxyType({})


@attrs.frozen(eq=False)
class CustomerBatch:
    """New customers, one array per field (all of the same length), in registration order.

    Attributes:
        number: canonical CRM number text of each customer (newly allocated).
        created_us: registration instant, microseconds since the epoch (UTC); a new
            customer's ``updated_at`` is the same instant.
        given, family: name parts, ``None`` or stripped text.
        display: the display name (never empty: "given family" when none was given).
        gender: :class:`~crmcore.Gender` or ``None``.
        birth_date: ``datetime.date`` or ``None``.
        title, job_title, organisation, owner: ``None`` or stripped text.
        emails: a tuple of :class:`~crmcore.EmailAddress` per row.
        phones: a tuple of :class:`~crmcore.PhoneNumber` per row.
        preferred_channel: :class:`~crmcore.InteractionChannel` or ``None``.
        tags: a frozenset of tags per row.
        stage: :class:`~crmcore.LifecycleStage`.
        source, external_id: the import key (``external_id`` never without ``source``).
    """

    number: ObjectArray
    created_us: Int64Array
    given: ObjectArray
    family: ObjectArray
    display: ObjectArray
    gender: ObjectArray
    birth_date: ObjectArray
    title: ObjectArray
    job_title: ObjectArray
    organisation: ObjectArray
    emails: ObjectArray
    phones: ObjectArray
    preferred_channel: ObjectArray
    tags: ObjectArray
    stage: ObjectArray
    owner: ObjectArray
    source: ObjectArray
    external_id: ObjectArray

    def __len__(self) -> int:
        return len(self.created_us)

    @classmethod
    def of(cls, customers: Sequence[Customer]) -> CustomerBatch:
        """The batch of new customers given as objects (their ``updated_at`` must equal
        ``created_at``, and they have no addresses, attributes or stage history and are not
        anonymised: what an import creates). For tests and hosts holding objects already.

        Raises:
            ValidationError: an item is not a customer, or has more than an import creates.
        """
        columns: dict[str, list[Any]] = {f.name: [] for f in _FIELDS}
        for index, customer in enumerate(customers):
            if not isinstance(customer, Customer):
                raise ValidationError(f"customers[{index}]", customer, "must be a Customer")
            if (
                customer.addresses
                or customer.attributes
                or customer.stage_history
                or customer.version
                or customer.anonymised_at is not None
                or customer.updated_at != customer.created_at
            ):
                raise ValidationError(
                    f"customers[{index}]",
                    customer.number,
                    "a new imported customer has no addresses, attributes, stage "
                    "history or updates",
                )
            columns["number"].append(customer.number.value)
            columns["created_us"].append(to_us(customer.created_at))
            columns["given"].append(customer.name.given)
            columns["family"].append(customer.name.family)
            columns["display"].append(customer.name.display)
            for name in _PLAIN:
                columns[name].append(getattr(customer, name))
        arrays: dict[str, Any] = {}
        for name, values in columns.items():
            if name == "created_us":
                arrays[name] = np.array(values, dtype=np.int64)
            else:
                arrays[name] = np.empty(len(values), dtype=object)
                arrays[name][:] = values
        return cls(**arrays)

    def customers(self) -> list[Customer]:
        """The rows as :class:`~crmcore.Customer` objects (version 0).

        Every value was validated when the batch was built, so the objects are assembled
        without running the validators again (most of the cost of building a customer).
        """
        # The loop allocates only acyclic objects: the cyclic collector's passes over the
        # growing heap would be pure overhead (a third of the time at 1M customers).
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._build()
        finally:
            if collecting:
                gc.enable()

    def _build(self) -> list[Customer]:
        out: list[Customer] = []
        new, put = object.__new__, object.__setattr__
        empty: tuple[()] = ()
        for (
            number,
            created,
            given,
            family,
            display,
            gender,
            birth,
            title,
            job,
            organisation,
            emails,
            phones,
            channel,
            tags,
            stage,
            owner,
            source,
            external_id,
        ) in zip(
            trusted_numbers(self.number.tolist()),
            self.created_us.tolist(),
            self.given.tolist(),
            self.family.tolist(),
            self.display.tolist(),
            self.gender.tolist(),
            self.birth_date.tolist(),
            self.title.tolist(),
            self.job_title.tolist(),
            self.organisation.tolist(),
            self.emails.tolist(),
            self.phones.tolist(),
            self.preferred_channel.tolist(),
            self.tags.tolist(),
            self.stage.tolist(),
            self.owner.tolist(),
            self.source.tolist(),
            self.external_id.tolist(),
            strict=True,
        ):
            name = new(PersonName)
            put(name, "given", given)
            put(name, "family", family)
            put(name, "display", display)
            at = from_us(created)
            customer = new(Customer)
            put(customer, "number", number)
            put(customer, "name", name)
            put(customer, "created_at", at)
            put(customer, "updated_at", at)
            put(customer, "gender", gender)
            put(customer, "birth_date", birth)
            put(customer, "title", title)
            put(customer, "job_title", job)
            put(customer, "organisation", organisation)
            put(customer, "emails", emails)
            put(customer, "phones", phones)
            put(customer, "addresses", empty)
            put(customer, "preferred_channel", channel)
            put(customer, "tags", tags)
            put(customer, "attributes", _NO_ATTRIBUTES)
            put(customer, "stage", stage)
            put(customer, "stage_history", empty)
            put(customer, "owner", owner)
            put(customer, "source", source)
            put(customer, "external_id", external_id)
            put(customer, "version", 0)
            put(customer, "anonymised_at", None)
            put(customer, "masked", False)
            out.append(customer)
        return out


_FIELDS = attrs.fields(CustomerBatch)
_PLAIN: Final = tuple(
    f.name for f in _FIELDS if f.name not in {"number", "created_us", "given", "family", "display"}
)
