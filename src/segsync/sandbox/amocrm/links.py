"""Reverse link indexes: which leads a contact/company has, which contacts a company has."""

from __future__ import annotations

from collections import defaultdict

from segsync.sandbox.amocrm.model import Record


class Links:
    def __init__(self) -> None:
        self.contact_leads: dict[int, list[int]] = defaultdict(list)
        self.company_leads: dict[int, list[int]] = defaultdict(list)
        self.company_contacts: dict[int, list[int]] = defaultdict(list)

    def add_lead(self, r: Record) -> None:
        for cid in r.contact_ids:
            self.contact_leads[cid].append(r.id)
        if r.company_id is not None:
            self.company_leads[r.company_id].append(r.id)

    def remove_lead(self, r: Record) -> None:
        for cid in r.contact_ids:
            _drop(self.contact_leads, cid, r.id)
        if r.company_id is not None:
            _drop(self.company_leads, r.company_id, r.id)

    def add_contact(self, r: Record) -> None:
        if r.company_id is not None:
            self.company_contacts[r.company_id].append(r.id)

    def remove_contact(self, r: Record) -> None:
        if r.company_id is not None:
            _drop(self.company_contacts, r.company_id, r.id)

    def leads_of(self, kind: str, entity_id: int) -> list[int]:
        index = self.contact_leads if kind == "contacts" else self.company_leads
        return list(index.get(entity_id, ()))

    def contacts_of_company(self, company_id: int) -> list[int]:
        return list(self.company_contacts.get(company_id, ()))


def _drop(index: dict[int, list[int]], key: int, value: int) -> None:
    items = index.get(key)
    if items and value in items:
        items.remove(value)
