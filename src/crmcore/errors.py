"""crmcore's exception hierarchy.

Every error crmcore raises on purpose derives from :class:`CrmError`, so a host can catch the
whole family in one ``except`` clause, and every error a database driver raises is translated
into one of these before it leaves an adapter. Errors that concern a value name the field and
the value, because "invalid input" without either is useless to the person fixing the data.

Error messages may contain the offending value, which can be personal data (an e-mail address
that failed validation, say). crmcore itself never logs them; a host that logs exceptions
should treat their text like the data it came from.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDenied",
    "BackupError",
    "ConcurrencyError",
    "ConfigurationError",
    "CrmError",
    "CurrencyConversionError",
    "DecryptionError",
    "DuplicateError",
    "ErasedError",
    "EventDeliveryError",
    "InvalidTransition",
    "NotFound",
    "RuleSyntaxError",
    "ValidationError",
]


class CrmError(Exception):
    """Base class of every error crmcore raises deliberately."""


class ValidationError(CrmError, ValueError):
    """A value is not acceptable for a field.

    Attributes:
        field: dotted name of the field that was being set (``"emails[0]"``,
            ``"total.amount"``).
        value: the rejected value, as given.
        reason: what is wrong with it, in words.
    """

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {reason} (got {value!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.reason))


class NotFound(CrmError, LookupError):
    """The requested entity does not exist (or no longer exists)."""

    def __init__(self, kind: str, key: Any) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!s} not found")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.key))


class ErasedError(NotFound):
    """The entity existed but was erased; its identifier is retired and will never be reused."""

    def __init__(self, kind: str, key: Any) -> None:
        super().__init__(kind, key)
        self.args = (f"{kind} {key!s} was erased",)


class DuplicateError(CrmError):
    """A uniqueness rule would be broken (same CRM number, same external reference, ...)."""

    def __init__(self, what: str, key: Any) -> None:
        self.what = what
        self.key = key
        super().__init__(f"duplicate {what}: {key!s}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.key))


class ConcurrencyError(CrmError):
    """Somebody else changed the same entity first (optimistic version check failed).

    Reload the entity, re-apply the change and try again.
    """


class InvalidTransition(CrmError):
    """A lifecycle stage change that the transition table does not allow."""

    def __init__(self, from_stage: Any, to_stage: Any) -> None:
        self.from_stage = from_stage
        self.to_stage = to_stage
        super().__init__(
            f"lifecycle stage cannot change from {_label(from_stage)} to {_label(to_stage)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.from_stage, self.to_stage))


class RuleSyntaxError(CrmError):
    """A segment rule could not be parsed or refers to something that does not exist.

    Attributes:
        rule: the rule text.
        position: 0-based character offset of the problem in ``rule``.
        message: what is wrong.
    """

    def __init__(self, message: str, rule: str = "", position: int = 0) -> None:
        self.message = message
        self.rule = rule
        self.position = position
        pointer = ""
        if rule:
            pointer = f"\n  {rule}\n  {' ' * position}^"
        super().__init__(f"{message} (at position {position}){pointer}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.rule, self.position))


class AccessDenied(CrmError, PermissionError):
    """The host's access policy refused an actor a use case (the refusal is audited).

    Attributes:
        actor: who was refused (an actor id, not personal data).
        action: what they tried (an audit action's value, e.g. ``"read"``).
    """

    def __init__(self, actor: str, action: str) -> None:
        self.actor = actor
        self.action = action
        super().__init__(f"actor {actor!r} may not {action}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.actor, self.action))


class ConfigurationError(CrmError):
    """crmcore was set up inconsistently (unknown dialect, exhausted number scheme, ...)."""


class DecryptionError(CrmError):
    """A stored ciphertext does not authenticate: it was altered, moved to another row or
    field, or sealed under a key that is not the one of that key id.

    Never carries the ciphertext, the plaintext or a key: only where the value was stored.
    """


class EventDeliveryError(CrmError):
    """One or more event handlers raised after a use case **committed**.

    The change is stored; retrying the use case would repeat it. ``__cause__`` is the first
    handler's exception; ``failures`` counts them.
    """

    def __init__(self, failures: int) -> None:
        self.failures = failures
        super().__init__(
            f"{failures} event handler call(s) failed; the change itself was committed"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.failures,))


class BackupError(CrmError):
    """A dump cannot be restored (missing, tampered or truncated file, incompatible
    manifest), or a store cannot be restored into (not empty, another number scheme).

    Attributes:
        file: the dump file at fault (its name in the dump directory), or ``None`` when the
            problem is not one file's.
        reason: what is wrong.
    """

    def __init__(self, reason: str, file: str | None = None) -> None:
        self.reason = reason
        self.file = file
        super().__init__(reason if file is None else f"{file}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.file))


class CurrencyConversionError(ConfigurationError, ValidationError):
    """A money amount is in a currency the store cannot convert to its reporting currency.

    It is both a configuration problem (no converter was supplied) and a problem with the
    record (its currency), so it can be caught as either.
    """

    def __init__(self, field: str, value: Any, reason: str) -> None:
        ValidationError.__init__(self, field, value, reason)


def _label(stage: Any) -> str:
    return str(getattr(stage, "value", stage))
