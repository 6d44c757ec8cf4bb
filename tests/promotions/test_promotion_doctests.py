"""The promotions modules' examples run, and the trigger registry is what the rules file and docs use."""

from __future__ import annotations

import dataclasses
import doctest
from pathlib import Path
from types import ModuleType

import pytest

from operators import settings
from operators.promotions import attribution, domain, examples, policy, rules, rules_file, triggers
from operators.promotions.triggers import MODULES, REGISTRY
from operators.promotions.triggers import base as trigger_base

DOCS = Path(__file__).resolve().parents[2] / "docs" / "promotions.md"
WITH_EXAMPLES = (attribution, domain, examples, settings, policy, rules, rules_file, triggers, trigger_base, *MODULES)


@pytest.mark.parametrize("module", WITH_EXAMPLES, ids=lambda m: m.__name__.removeprefix("operators.promotions."))
def test_doctests(module: ModuleType) -> None:
    failed, attempted = doctest.testmod(module)
    assert attempted > 0 and failed == 0


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
