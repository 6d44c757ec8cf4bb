"""The trigger registry is what the rules file and the docs use."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from operators.promotions import rules_file
from operators.promotions.triggers import MODULES, REGISTRY

DOCS = Path(__file__).resolve().parents[2] / "docs" / "promotions.md"


def test_the_rules_take_trigger_names_keys_and_params_from_the_registry() -> None:
    assert tuple(REGISTRY) == rules_file.TRIGGERS
    assert [module.TRIGGER.name for module in MODULES] == list(REGISTRY)
    for name, trigger in REGISTRY.items():
        module = next(m for m in MODULES if m.TRIGGER is trigger)
        assert module.__name__.rsplit(".", 1)[1] == name
        assert trigger.params in rules_file.TriggerParams.__args__
        # its keys build its params, field for field
        assert len(trigger.keys) == len(dataclasses.fields(trigger.params))


def test_the_docs_tell_how_to_add_a_trigger() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    assert "## Adding a trigger" in docs
    for module in MODULES:
        assert f"`{module.TRIGGER.name}`" in docs
