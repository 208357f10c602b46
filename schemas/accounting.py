"""Accounting records as they cross the boundary: counterparties, invoices and payments read from
1C:Enterprise OData, 1CClientBankExchange statements or CSV, validated before they reach the store."""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

CENT = Decimal("0.01")
_INN_10_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN_12_WEIGHTS_1 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN_12_WEIGHTS_2 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _check_digit(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


def normalize_inn(raw: object) -> str | None:
    """The ИНН as 10 (company) or 12 (person) digits when its check digits hold, else None:
    a mistyped ИНН must not link a payment to somebody else's invoices."""
    if raw is None:
        return None
    digits = re.sub(r"\D", "", str(raw))
    if len(digits) == 10 and _check_digit(digits, _INN_10_WEIGHTS) == int(digits[9]):
        return digits
    if (
        len(digits) == 12
        and _check_digit(digits, _INN_12_WEIGHTS_1) == int(digits[10])
        and _check_digit(digits, _INN_12_WEIGHTS_2) == int(digits[11])
    ):
        return digits
    return None


def with_inn_check_digits(first_nine: str) -> str:
    """A company ИНН completed with its check digit (demo and test data)."""
    return first_nine + str(_check_digit(first_nine, _INN_10_WEIGHTS))


def to_money(value: object) -> Decimal:
    """Money as Decimal to the kopeck. Floats (1C sends Edm.Double) go through their shortest
    repr, so 1234.1 stays 1234.10 and not 1234.0999999; "1 234,50" and "1234-50" are read too."""
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, bool):
        raise ValueError("money must be a number, not a boolean")
    elif isinstance(value, (int, float)):
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        text = value.strip().replace("\u00a0", "").replace(" ", "")
        # Bank files write kopecks after a dash or a comma: "1234-50", "1234,50".
        text = re.sub(r"^(-?\d+)[-,](\d{1,2})$", r"\1.\2", text)
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not an amount of money") from None
    else:
        raise ValueError(f"{value!r} is not an amount of money")
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount of money")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


# Field types shared by the records: money read by to_money, an ИНН kept only when valid.
Money = Annotated[Decimal, BeforeValidator(to_money)]
TaxId = Annotated[str | None, BeforeValidator(normalize_inn)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=20_000, str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value


class Counterparty(_Record):
    """A client as the accounting system knows it (1C Catalog_Контрагенты)."""

    source_ref: str = Field(min_length=1, max_length=200)
    name: str | None = Field(None, max_length=300)
    full_name: str | None = Field(None, max_length=1000)
    tax_id: TaxId = None
    kpp: str | None = Field(None, max_length=20)


class InvoiceRecord(_Record):
    """An invoice issued to a client (1C Document_СчетНаОплатуПокупателю or a CSV row)."""

    source_ref: str = Field(min_length=1, max_length=200)
    number: str = Field(min_length=1, max_length=64)
    issued_on: date
    due_on: date
    amount: Money
    currency: str = Field("RUB", min_length=3, max_length=3)
    counterparty_tax_id: TaxId = None
    counterparty_name: str | None = Field(None, max_length=300)

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("an invoice amount must be positive")
        return value

    @field_validator("due_on")
    @classmethod
    def _due_after_issue(cls, value: date, info: object) -> date:
        issued = getattr(info, "data", {}).get("issued_on")
        if issued is not None and value < issued:
            raise ValueError(f"due date {value} is before the issue date {issued}")
        return value


class InvoiceLink(BaseModel):
    """The accounting system's own statement that a payment (or part of it) settles an invoice."""

    invoice_ref: str = Field(min_length=1, max_length=200)
    amount: Decimal | None = None


class PaymentRecord(_Record):
    """Money received from a client (positive) or refunded to one (negative)."""

    source_ref: str = Field(min_length=1, max_length=200)
    paid_on: date
    amount: Money
    currency: str = Field("RUB", min_length=3, max_length=3)
    payer_tax_id: TaxId = None
    payer_name: str | None = Field(None, max_length=300)
    payer_account: str | None = Field(None, max_length=34)
    purpose: str | None = Field(None, max_length=2000)
    linked_invoices: list[InvoiceLink] = Field(default_factory=list)

    @field_validator("amount")
    @classmethod
    def _not_zero(cls, value: Decimal) -> Decimal:
        if value == 0:
            raise ValueError("a payment of zero moves no money")
        return value
