"""The README stays accurate for a newcomer: the commands, every setting, the demo accounts, the data."""

import re

import yaml

from hue_reports.cli import DEFAULT_DATA_DIR
from hue_reports.config import SETTINGS
from hue_reports.services import seed
from tests.support import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _table_rows() -> dict[str, str]:
    """{variable: default cell} from the README's markdown tables."""
    rows = {}
    for match in re.finditer(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]+) \|", README, re.MULTILINE):
        rows[match[1]] = match[2].strip()
    return rows


def test_the_quick_start_is_the_two_commands():
    assert "make run" in README and "make test" in README


def test_every_setting_is_in_the_configuration_table_with_its_default():
    rows = _table_rows()
    for setting in SETTINGS:
        assert setting.name in rows, f"README does not document {setting.name}"
        expected = "(none)" if setting.default is None else f"`{setting.default}`"
        assert rows[setting.name] == expected, f"README gives {setting.name} the default {rows[setting.name]}"


def test_the_demo_accounts_in_the_readme_are_the_seeded_ones():
    assert f"`{seed.demo_password(DEFAULT_DATA_DIR)}`" in README
    for username in seed.demo_usernames(DEFAULT_DATA_DIR):
        assert f"`{username}`" in README


def test_the_data_counts_in_the_readme_match_the_data():
    groups = yaml.safe_load((DEFAULT_DATA_DIR / "categories.yaml").read_text(encoding="utf-8"))["groups"]
    n_categories = sum(len(g["categories"]) for g in groups)
    assert f"{n_categories} categories in {len(groups)} groups" in README
