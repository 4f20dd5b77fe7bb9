"""The entry point keeps resolving to the spec after the implementation module was imported."""

from __future__ import annotations

import importlib

from connectors.bitrix24.options import Bitrix24Source
from segsync.registry import ConnectorSpec, connector_spec, connector_specs


def test_spec_survives_the_implementation_import():
    importlib.import_module("connectors.bitrix24.connector")  # binds the package attribute `connector`
    connector_specs.cache_clear()
    try:
        spec = connector_spec("bitrix24")
        assert isinstance(spec, ConnectorSpec) and spec.source_model is Bitrix24Source
    finally:
        connector_specs.cache_clear()
