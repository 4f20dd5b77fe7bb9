"""segsync: pull CRM data, compute customer segments, write them back — exactly once."""

__version__ = "0.1.0"
