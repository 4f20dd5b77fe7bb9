"""The `sources:` entry of a CSV deals export (``kind: csv``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from segsync.config.sources import SourceBase, Strict

Column = str | int  # a header name, or a 1-based column number for files without a header


class CsvColumns(Strict):
    customer_id: Column = Field(description="Customer id column (header name or 1-based number).")
    date: Column = Field(description="Purchase date column.")
    amount: Column = Field(description="Amount column (in the base currency).")
    deal_id: Column | None = Field(default=None, description="Deal id column; default: the line number.")
    name: Column | None = None
    phone: Column | None = None
    email: Column | None = None


class CsvSource(SourceBase):
    kind: Literal["csv"]
    path: str = Field(description="The file to read (read-only; segsync never writes it).")
    columns: CsvColumns
    header: bool = Field(default=True, description="The first line holds column names.")
    delimiter: str = Field(
        default=",", description="Field separator: one character, or 'whitespace' for space-aligned files."
    )
    date_format: str = Field(default="%Y-%m-%d", description="strftime format of the date column, e.g. %d.%m.%Y.")
    decimal_comma: bool = Field(default=False, description="Amounts like '12 500,50' (comma decimal, space groups).")
    encoding: Literal["utf-8", "utf-8-sig", "cp1251"] = "utf-8"
    customer_kind: Literal["contact", "company"] = Field(
        default="contact", description="What the customer ids are: contacts (B2C) or companies (B2B)."
    )
    currency: str | None = Field(default=None, description="Currency code written on the deals (informational).")
    page_size: int = Field(default=5000, gt=0, description="Records per page handed to the store.")

    @model_validator(mode="after")
    def _check(self) -> CsvSource:
        if self.delimiter != "whitespace" and len(self.delimiter) != 1:
            raise ValueError("delimiter must be one character or 'whitespace'")
        names = [v for v in self.columns.model_dump().values() if v is not None]
        if not self.header and any(isinstance(v, str) for v in names):
            raise ValueError("without a header, columns must be given by number (1-based)")
        if any(isinstance(v, int) and v < 1 for v in names):
            raise ValueError("column numbers start at 1")
        return self
