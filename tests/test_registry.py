"""Every layer type declares every trait; a type that forgets one is refused when it is registered."""

from __future__ import annotations

import pytest

from convaudit.core.layers import REGISTRY, TRAITS, LayerType, Outcome, register, undeclared_traits
from convaudit.core.layers.base import TRAIT_VALUES, trait_of
from convaudit.spec.library import load
from tests.conftest import ARCHITECTURES


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_type_declares_every_trait(name: str) -> None:
    layer_type = REGISTRY[name]
    assert undeclared_traits(type(layer_type)) == []
    for trait, allowed in TRAIT_VALUES.items():
        value = getattr(layer_type, trait)
        assert callable(value) or value in allowed


@pytest.mark.parametrize("path", ARCHITECTURES, ids=lambda path: path.stem)
def test_traits_that_depend_on_parameters_give_known_values(path) -> None:
    for layer in load(str(path)).layers:
        for trait, allowed in TRAIT_VALUES.items():
            assert trait_of(REGISTRY[layer.type], trait, layer.params) in allowed, (layer.name, trait)


def test_a_type_missing_a_trait_is_refused() -> None:
    class Forgetful(LayerType):
        type_name = "forgetful"
        prefix = "f"
        doc = "declares no traits"
        category = "other"

        def apply(self, inputs, params):  # pragma: no cover - never registered
            return Outcome(shape=inputs[0])

    with pytest.raises(TypeError, match="plan_role"):
        register(Forgetful)
    assert "forgetful" not in REGISTRY
    assert set(TRAITS) >= {"category", "plan_role"}
