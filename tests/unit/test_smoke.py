from sqlalchemy import inspect

from segsync.store.tables import metadata


def test_migrated_store_has_every_table(engine):
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
