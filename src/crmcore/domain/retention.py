"""Declarative retention rules (storage limitation): what to blank, anonymise or delete, and when.

A rule states a period; :meth:`crmcore.Crm.apply_retention` turns it into a cut-off instant
(``as_of`` minus the period) and applies it. Three rules exist:

* :class:`BlankInteractionNotes` -- the subject and notes of interactions that occurred
  before the cut-off are removed (the interaction itself, its channel, kind, outcome and
  time stay for the analytics).
* :class:`AnonymiseInactiveCustomers` -- customers *inactive* since the cut-off lose their
  personal data (:func:`anonymised`); their CRM number, stage, transactions and aggregates
  stay, de-identified, for the analytics.
* :class:`DeleteInactiveCustomers` -- customers inactive since the cut-off are erased.

**Inactive since a cut-off** means: registered before the cut-off, and no transaction (purchase
or refund) and no interaction occurred at or after it. Erased customers are never listed;
anonymised customers are not anonymised again, but are deleted by a delete rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import ClassVar, Final, TypeAlias

import attrs

from crmcore.domain import _checks
from crmcore.domain.customer import Customer, PersonName
from crmcore.errors import ValidationError

__all__ = [
    "ANONYMISED_FIELDS",
    "ANONYMISED_NAME",
    "AnonymiseInactiveCustomers",
    "BlankInteractionNotes",
    "DeleteInactiveCustomers",
    "Period",
    "RetentionRule",
    "anonymised",
    "days",
    "parse_rules",
    "years",
]

ANONYMISED_NAME: Final = "(anonymised)"
"""The display name every anonymised customer carries (a name is required)."""


def _count(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(field, value, "must be a non-negative integer")
    return value


@attrs.frozen(field_transformer=_checks.install_converters)
class Period:
    """A length of time in calendar years plus days (``years(3)``, ``days(90)``).

    Raises:
        ValidationError: a negative or non-integer part, or both parts zero.
    """

    years: int = attrs.field(default=0, metadata=_checks.converts(_count))
    days: int = attrs.field(default=0, metadata=_checks.converts(_count))

    def __attrs_post_init__(self) -> None:
        if self.years == 0 and self.days == 0:
            raise ValidationError("period", self, "must be longer than zero")
        if self.years > 200:
            raise ValidationError("years", self.years, "must be at most 200")

    def before(self, instant: dt.datetime) -> dt.datetime:
        """``instant`` minus this period (29 February minus a year is 28 February).

        Raises:
            ValidationError: a naive instant, or one too early to go back from.
        """
        at = _checks.aware_utc("as_of", instant)
        year = at.year - self.years
        if year < dt.MINYEAR:
            raise ValidationError("as_of", instant, f"is too early to go back {self}")
        try:
            shifted = at.replace(year=year)
        except ValueError:  # 29 February in a year without one
            shifted = at.replace(year=year, day=28)
        try:
            return shifted - dt.timedelta(days=self.days)
        except OverflowError:
            raise ValidationError("as_of", instant, f"is too early to go back {self}") from None

    def __str__(self) -> str:
        parts = [f"{self.years} years"] if self.years else []
        parts += [f"{self.days} days"] if self.days else []
        return " ".join(parts)


def years(count: int) -> Period:
    """A period of ``count`` calendar years."""
    return Period(years=count)


def days(count: int) -> Period:
    """A period of ``count`` days."""
    return Period(days=count)


def _period(field: str, value: object) -> Period:
    return _checks.instance_of(field, Period, value)


@attrs.frozen(field_transformer=_checks.install_converters)
class BlankInteractionNotes:
    """Remove the subject and notes of interactions that occurred more than ``older_than``
    before the run's ``as_of``."""

    older_than: Period = attrs.field(metadata=_checks.converts(_period))
    kind: ClassVar[str] = "blank_interaction_notes"

    def __str__(self) -> str:
        return f"blank interaction notes older than {self.older_than}"


@attrs.frozen(field_transformer=_checks.install_converters)
class AnonymiseInactiveCustomers:
    """Anonymise customers inactive for ``inactive_for`` (see the module docstring)."""

    inactive_for: Period = attrs.field(metadata=_checks.converts(_period))
    kind: ClassVar[str] = "anonymise_inactive_customers"

    def __str__(self) -> str:
        return f"anonymise customers inactive for {self.inactive_for}"


@attrs.frozen(field_transformer=_checks.install_converters)
class DeleteInactiveCustomers:
    """Erase customers inactive for ``inactive_for`` (as :meth:`crmcore.Crm.erase` does)."""

    inactive_for: Period = attrs.field(metadata=_checks.converts(_period))
    kind: ClassVar[str] = "delete_inactive_customers"

    def __str__(self) -> str:
        return f"delete customers inactive for {self.inactive_for}"


RetentionRule: TypeAlias = (
    BlankInteractionNotes | AnonymiseInactiveCustomers | DeleteInactiveCustomers
)
"""Any retention rule."""

_KINDS: Final = {
    "blank_interaction_notes": (BlankInteractionNotes, "older_than"),
    "anonymise_inactive_customers": (AnonymiseInactiveCustomers, "inactive_for"),
    "delete_inactive_customers": (DeleteInactiveCustomers, "inactive_for"),
}


def parse_rules(data: Mapping[str, object]) -> tuple[RetentionRule, ...]:
    """Rules from a parsed document (the ``crmcore retention run --rules`` TOML file)::

        [[rule]]
        kind = "blank_interaction_notes"
        older_than = { years = 3 }

        [[rule]]
        kind = "anonymise_inactive_customers"
        inactive_for = { years = 7 }

    Rules apply in the order written.

    Raises:
        ValidationError: an unknown key or kind, a missing or malformed period (the message
            names the rule's position and field).
    """
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        raise ValidationError(unknown[0], data[unknown[0]], "unknown key; rules go in [[rule]]")
    items = data.get("rule")
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise ValidationError("rule", items, "must be a list of [[rule]] tables")
    out: list[RetentionRule] = []
    for index, item in enumerate(items):
        where = f"rule[{index}]"
        if not isinstance(item, Mapping):
            raise ValidationError(where, item, "must be a table")
        kind = item.get("kind")
        if kind not in _KINDS:
            raise ValidationError(f"{where}.kind", kind, f"must be one of {sorted(_KINDS)}")
        cls, field = _KINDS[str(kind)]
        extra = sorted(set(item) - {"kind", field})
        if extra:
            raise ValidationError(f"{where}.{extra[0]}", item[extra[0]], "unknown key")
        period = item.get(field)
        if not isinstance(period, Mapping) or not set(period) <= {"years", "days"}:
            raise ValidationError(
                f"{where}.{field}", period, "must be a table like { years = 3 } or { days = 90 }"
            )
        try:
            out.append(cls(Period(**{str(k): v for k, v in period.items()})))  # type: ignore[arg-type]
        except ValidationError as exc:
            raise ValidationError(f"{where}.{field}", period, str(exc)) from None
    return tuple(out)


ANONYMISED_FIELDS: Final = (
    "addresses",
    "attributes",
    "birth_date",
    "emails",
    "external_id",
    "gender",
    "job_title",
    "name",
    "organisation",
    "phones",
    "stage_history",
    "title",
)
"""The customer fields :func:`anonymised` removes or replaces (stage history: the reasons)."""


def anonymised(customer: Customer, at: dt.datetime) -> Customer:
    """``customer`` without its personal data, marked anonymised at ``at``.

    Removed: the name (replaced by :data:`ANONYMISED_NAME`), gender, birth date, title, job
    title, organisation, e-mail addresses, phone numbers, postal addresses, custom
    attributes, consent decisions, the import key (``external_id``) and the reasons written
    on stage changes (free text). Kept, for the analytics: the CRM number, stage and the
    stage history's stages and instants, tags, preferred channel, owner, source,
    registration time and version. Nothing is stored here.
    """
    return attrs.evolve(
        customer,
        name=PersonName(display=ANONYMISED_NAME),
        gender=None,
        birth_date=None,
        title=None,
        job_title=None,
        organisation=None,
        emails=(),
        phones=(),
        addresses=(),
        attributes={},
        external_id=None,
        stage_history=tuple(attrs.evolve(change, reason="") for change in customer.stage_history),
        updated_at=max(_checks.aware_utc("at", at), customer.created_at),
        anonymised_at=at,
    )
