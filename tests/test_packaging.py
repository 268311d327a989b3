"""What a non-editable install ships: every subpackage, the bundled specs and the schema."""

from __future__ import annotations

import re

from .conftest import ROOT


def listed_packages() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r"^packages = \[(.*?)\]", text, re.M | re.S)
    assert match, "pyproject.toml lists no packages"
    return set(re.findall(r'"([^"]+)"', match.group(1)))


def test_every_subpackage_is_listed() -> None:
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "convaudit").rglob("__init__.py")}
    assert found <= listed_packages(), f"add to [tool.setuptools] packages: {sorted(found - listed_packages())}"
    assert "convaudit.architectures" in listed_packages()  # the top-level architectures/ folder, mapped in


def test_package_data_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"convaudit" = ["py.typed"]' in text
    assert '"convaudit.spec" = ["spec.schema.json"]' in text
    assert '"convaudit.architectures" = ["*.yaml"]' in text
