"""Every example in a docstring of the project's own packages runs and shows what it says.

Modules are found by walking the packages, so a module added later is covered without
being listed here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import channelflow
import flows
import operators

PACKAGES = (operators, flows, channelflow)


def _modules_with_examples() -> list[str]:
    finder = doctest.DocTestFinder()
    names = []
    for package in PACKAGES:
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if info.name.endswith(".__main__"):  # runs its program on import
                continue
            module = importlib.import_module(info.name)
            if any(test.examples for test in finder.find(module, info.name, module=module)):
                names.append(info.name)
    return names


MODULES = _modules_with_examples()


def test_the_packages_have_examples() -> None:
    assert len(MODULES) > 50  # the walk found the packages' modules (not an empty parametrization)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # none run: all marked +SKIP
    assert failed == 0
