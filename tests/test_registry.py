"""Every layer type declares every trait; a type that forgets one is refused when it is registered."""

from __future__ import annotations

import pytest

from convaudit.core.layers import REGISTRY, TRAITS, LayerType, Outcome, register, undeclared_traits
from convaudit.core.layers.base import TRAIT_VALUES


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_type_declares_every_trait(name: str) -> None:
    layer_type = REGISTRY[name]
    assert undeclared_traits(type(layer_type)) == []
    for trait, allowed in TRAIT_VALUES.items():
        assert getattr(layer_type, trait) in allowed


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
