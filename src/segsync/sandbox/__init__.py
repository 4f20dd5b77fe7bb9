"""A faithful local emulator of the Bitrix24 and amoCRM endpoints segsync uses, plus synthetic data.

It is what ``segsync demo`` runs against, what integration tests and benchmarks use, and what a new
user tries first. See docs/sandbox.md.
"""
