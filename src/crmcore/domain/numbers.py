"""CRM numbers: the customer's public, permanent identifier.

A CRM number reads ``PREFIX`` + zero-padded sequence + one check digit, for example
``C0000012347``: prefix ``C``, sequence ``1234`` padded to 9 digits, check digit ``7``.
The check digit lets a call-centre agent or an import catch a mistyped number before it
reaches the wrong customer.

The default check algorithm is Damm's: it detects every single-digit substitution and every
adjacent transposition (Luhn misses the transposition 09 <-> 90). ``tests/unit`` proves both
exhaustively for a small width.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Final

import attrs

from crmcore.errors import ConfigurationError, ValidationError

__all__ = ["DEFAULT_SCHEME", "CheckAlgorithm", "CrmNumber", "CrmNumberScheme"]

# The weakly totally anti-symmetric quasigroup of order 10 published by H. Michael Damm (2004).
_DAMM: Final = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

_SEPARATORS = re.compile(r"[\s\-_.·/]+")
_PREFIX = re.compile(r"[A-Z]{1,8}")
_CANONICAL = re.compile(r"[A-Z]{1,8}[0-9]{2,20}")


class CheckAlgorithm(enum.Enum):
    """How the check digit of a CRM number is computed."""

    DAMM = "damm"
    """Detects all single-digit errors and all adjacent transpositions (default)."""
    LUHN = "luhn"
    """The credit-card algorithm; misses the 09/90 transposition. For compatibility only."""

    def check_digit(self, digits: str) -> int:
        """Return the check digit for a string of decimal digits."""
        if self is CheckAlgorithm.DAMM:
            interim = 0
            for ch in digits:
                interim = _DAMM[interim][ord(ch) - 48]
            return int(interim)
        total = 0
        # Luhn doubles every second digit counting from the right of the payload+check.
        for i, ch in enumerate(reversed(digits)):
            d = ord(ch) - 48
            if i % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        return (10 - total % 10) % 10


@attrs.frozen(order=True)
class CrmNumber:
    """A customer's CRM number in canonical form (upper-case prefix, digits, check digit).

    Construct one with :meth:`CrmNumberScheme.format` (from a sequence) or
    :meth:`CrmNumber.parse` / :meth:`CrmNumberScheme.parse` (from text typed by a person).
    The constructor only checks the general shape; the scheme checks prefix, width and check
    digit. Numbers order by their text, which under one scheme is their sequence order.
    """

    value: str

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.value, str) or not _CANONICAL.fullmatch(self.value):
            raise ValidationError(
                "crm_number", self.value, "must be letters followed by digits, e.g. C0000012347"
            )

    @classmethod
    def parse(cls, text: str, scheme: CrmNumberScheme | None = None) -> CrmNumber:
        """Parse a CRM number as a person might type it (see :meth:`CrmNumberScheme.parse`)."""
        return (scheme or DEFAULT_SCHEME).parse(text)

    def __str__(self) -> str:
        return self.value


def trusted_numbers(texts: Iterable[str]) -> list[CrmNumber]:
    """CRM numbers of text already known to be canonical, built without checking it again.

    Only for text crmcore itself produced or verified (a scheme's ``format``, a column of
    numbers checked by the bulk import, a store's own keys): the shape check is most of the
    cost of a number, and bulk paths build hundreds of thousands.
    """
    new, put = object.__new__, object.__setattr__
    out = []
    for text in texts:
        number = new(CrmNumber)
        put(number, "value", text)
        out.append(number)
    return out


@attrs.frozen
class CrmNumberScheme:
    """How CRM numbers look in one store: prefix, sequence width and check algorithm.

    Args:
        prefix: 1-8 upper-case ASCII letters.
        width: number of sequence digits (zero-padded), 2-18.
        algorithm: check-digit algorithm.
    """

    prefix: str = "C"
    width: int = 9
    algorithm: CheckAlgorithm = CheckAlgorithm.DAMM

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _PREFIX.fullmatch(self.prefix):
            raise ConfigurationError(
                f"scheme prefix must be 1-8 upper-case letters, got {self.prefix!r}"
            )
        if not isinstance(self.width, int) or not 2 <= self.width <= 18:
            raise ConfigurationError(f"scheme width must be 2..18 digits, got {self.width!r}")
        if not isinstance(self.algorithm, CheckAlgorithm):
            raise ConfigurationError(f"unknown check algorithm {self.algorithm!r}")

    @property
    def max_sequence(self) -> int:
        """The largest sequence this scheme can format."""
        return int(10**self.width) - 1

    @property
    def length(self) -> int:
        """Length of a canonical number under this scheme."""
        return len(self.prefix) + self.width + 1

    def format(self, sequence: int) -> CrmNumber:
        """Return the CRM number for ``sequence`` (1-based)."""
        if isinstance(sequence, bool) or not isinstance(sequence, int):
            raise ValidationError("sequence", sequence, "must be an integer")
        if not 1 <= sequence <= self.max_sequence:
            if sequence > self.max_sequence:
                raise ConfigurationError(
                    f"CRM number scheme {self.prefix}/{self.width} is exhausted at "
                    f"sequence {sequence}; widen the scheme"
                )
            raise ValidationError("sequence", sequence, "must be at least 1")
        digits = str(sequence).zfill(self.width)
        check = self.algorithm.check_digit(digits)
        return CrmNumber(f"{self.prefix}{digits}{check}")

    def parse(self, text: str) -> CrmNumber:
        """Parse and verify a CRM number typed by a person.

        Surrounding whitespace, lower case and group separators (spaces, hyphens, dots,
        underscores, slashes) are accepted: ``" c-000 001 234-7 "`` parses.

        Raises:
            ValidationError: naming what is wrong: prefix, length, a non-digit, or the check
                digit.
        """
        if not isinstance(text, str):
            raise ValidationError("crm_number", text, "must be text")
        compact = _SEPARATORS.sub("", text).upper()
        if not compact.startswith(self.prefix):
            raise ValidationError(
                "crm_number", text, f"wrong prefix: expected it to start with {self.prefix!r}"
            )
        body = compact[len(self.prefix) :]
        if len(compact) != self.length:
            raise ValidationError(
                "crm_number",
                text,
                f"wrong length: expected {self.width + 1} digits after the prefix, "
                f"found {len(body)} characters",
            )
        if not body.isascii() or not body.isdigit():
            raise ValidationError("crm_number", text, "only digits may follow the prefix")
        payload, check = body[:-1], int(body[-1])
        if self.algorithm.check_digit(payload) != check:
            raise ValidationError(
                "crm_number", text, "wrong check digit: the number was probably mistyped"
            )
        return CrmNumber(compact)

    def sequence_of(self, number: CrmNumber) -> int:
        """Return the sequence encoded in ``number`` (verifying it belongs to this scheme)."""
        parsed = self.parse(number.value)
        return int(parsed.value[len(self.prefix) : -1])

    def is_valid(self, text: str) -> bool:
        """True if ``text`` parses under this scheme."""
        try:
            self.parse(text)
        except ValidationError:
            return False
        return True


DEFAULT_SCHEME: Final = CrmNumberScheme()
"""``C`` + 9 digits + Damm check digit: room for 999,999,999 customers."""
