from __future__ import annotations

import os

import pytest

from segsync.config import parse_rules
from segsync.errors import ConfigError
from segsync.secrets import SecretError, lookup_secret, write_private_file

RULES = """
sources:
  - name: amo
    kind: amocrm
    base_url: https://a.amocrm.ru
    long_lived_token: ${AMO_TOKEN}
"""


def test_secret_from_env_or_file(tmp_path):
    path = tmp_path / "token"
    write_private_file(path, "from-file-secret\n")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert lookup_secret("AMO_TOKEN", {"AMO_TOKEN": "from-env"}) == "from-env"
    assert lookup_secret("AMO_TOKEN", {"AMO_TOKEN_FILE": str(path)}) == "from-file-secret"
    assert lookup_secret("AMO_TOKEN", {}) is None


def test_world_readable_secret_file_is_refused(tmp_path):
    path = tmp_path / "token"
    path.write_text("x")
    os.chmod(path, 0o644)
    with pytest.raises(SecretError, match="readable by other users"):
        lookup_secret("AMO_TOKEN", {"AMO_TOKEN_FILE": str(path)})


def test_rules_take_secrets_from_files(tmp_path):
    path = tmp_path / "token"
    write_private_file(path, "abc123456")
    rules = parse_rules(RULES, "r.yaml", {"AMO_TOKEN_FILE": str(path)})
    assert rules.sources[0].long_lived_token.get_secret_value() == "abc123456"


def test_unsafe_secret_file_is_a_located_config_error(tmp_path):
    path = tmp_path / "token"
    path.write_text("x")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError) as info:
        parse_rules(RULES, "r.yaml", {"AMO_TOKEN_FILE": str(path)})
    assert str(info.value).startswith("r.yaml:6:23: sources[0].long_lived_token:")


def test_default_and_escape():
    text = RULES.replace("${AMO_TOKEN}", "${AMO_TOKEN:-fallback-token}") + "store: sqlite:///$${HOME}.db\n"
    rules = parse_rules(text, "r.yaml", {})
    assert rules.sources[0].long_lived_token.get_secret_value() == "fallback-token"
    assert rules.store == "sqlite:///${HOME}.db"
