"""The rules file: schema, loading with located errors, JSON Schema export."""

from segsync.config.loader import load_rules, parse_rules
from segsync.config.models import Rules, rules_model

__all__ = ["Rules", "json_schema", "load_rules", "parse_rules", "rules_model"]


def json_schema() -> dict:
    """JSON Schema of the rules file, with every installed connector's source options."""
    schema = rules_model().model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "segsync rules"
    return schema
