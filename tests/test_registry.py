"""The registry: components by family and short name, with their settings schema."""

from __future__ import annotations

from typing import Literal

import pytest

from advml import registry
from advml.base import Component
from advml.evasion import BIM, FGSM, PGD


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test disappear after it."""
    monkeypatch.setattr(registry, "_REGISTRY", {k: dict(v) for k, v in registry._REGISTRY.items()})


def test_available_lists_the_evasion_attacks_sorted() -> None:
    names = registry.available("evasion")
    assert {"fgsm", "bim", "pgd"} <= set(names)
    assert names == sorted(names)


def test_get_returns_the_class() -> None:
    assert registry.get("evasion", "fgsm") is FGSM
    assert registry.get("evasion", "bim") is BIM
    assert registry.get("evasion", "pgd") is PGD


def test_unknown_family() -> None:
    for call in (
        lambda: registry.available("poetry"),
        lambda: registry.get("poetry", "pgd"),
        lambda: registry.create("poetry", "pgd"),
        lambda: registry.schema("poetry", "pgd"),
    ):
        with pytest.raises(ValueError, match=r"unknown family 'poetry'.*evasion"):
            call()


def test_unknown_name_lists_the_available_ones() -> None:
    for call in (
        lambda: registry.get("evasion", "pgdd"),
        lambda: registry.create("evasion", "pgdd"),
        lambda: registry.schema("evasion", "pgdd"),
    ):
        with pytest.raises(ValueError, match=r"'pgdd'.*available: .*bim, .*fgsm, .*pgd"):
            call()


def test_create_builds_with_the_given_settings() -> None:
    attack = registry.create("evasion", "pgd", eps=0.1, steps=20)
    assert isinstance(attack, PGD)
    assert attack.eps == 0.1 and attack.steps == 20 and attack.restarts == 1


def test_create_rejects_unknown_settings_and_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"\['epsilon'\].*'eps'"):
        registry.create("evasion", "pgd", epsilon=0.1)


def test_create_validates_through_the_constructor() -> None:
    with pytest.raises(ValueError, match="eps"):
        registry.create("evasion", "fgsm", eps=-1.0)


def test_schema_of_pgd() -> None:
    schema = registry.schema("evasion", "pgd")
    assert list(schema) == list(PGD().get_params())
    assert schema["eps"] == {
        "type": "float",
        "default": 0.3,
        "required": False,
        "doc": "Radius of the allowed perturbation (>= 0); 0.3 is the MNIST L∞ convention, for",
    }
    assert schema["steps"]["type"] == "int" and schema["steps"]["default"] == 40
    assert schema["step_size"]["type"] == "float | None"
    assert schema["norm"]["type"] == "Literal['inf', '2']"
    assert schema["targeted"]["type"] == "bool" and schema["targeted"]["default"] is False
    assert schema["seed"]["default"] == 0


class _Toy(Component):
    """A toy.

    Parameters
    ----------
    size : int
        How big it is.
        Further lines are not the summary.
    colour : {"red", "blue"}
        Its colour.
    label : str, optional

    Returns
    -------
    nothing : int
        Not a parameter.
    """

    def __init__(self, *, size: int, colour: Literal["red", "blue"] = "red", label: str = ""):
        self.size = size
        self.colour = colour
        self.label = label


def test_register_and_schema_of_a_new_family(scratch_registry: None) -> None:
    cls = registry.register("toys", "toy")(_Toy)
    assert cls is _Toy and _Toy.name == "toy" and _Toy.family == "toys"
    assert registry.available("toys") == ["toy"]
    schema = registry.schema("toys", "toy")
    assert set(schema) == {"size", "colour", "label"}  # "nothing" is a return value
    assert schema["size"] == {
        "type": "int",
        "default": None,
        "required": True,
        "doc": "How big it is.",
    }
    assert schema["colour"]["doc"] == "Its colour."
    assert schema["colour"]["default"] == "red" and not schema["colour"]["required"]
    assert schema["label"]["doc"] == ""  # documented by name only
    toy = registry.create("toys", "toy", size=3)
    assert isinstance(toy, _Toy) and toy.get_params() == {"size": 3, "colour": "red", "label": ""}


def test_registering_a_name_twice_raises(scratch_registry: None) -> None:
    class Other(Component):
        pass

    with pytest.raises(ValueError, match="'pgd' is already registered"):
        registry.register("evasion", "pgd")(Other)
    assert registry.get("evasion", "pgd") is PGD
    registry.register("evasion", "pgd")(PGD)  # the same class again is harmless
    assert registry.get("evasion", "pgd") is PGD


def test_component_params_repr_and_set_params() -> None:
    attack = PGD(eps=0.1, steps=5)
    assert repr(attack) == "PGD(eps=0.1, steps=5)"
    assert repr(FGSM()) == "FGSM()"
    changed = attack.set_params(steps=9)
    assert changed.get_params() == {**attack.get_params(), "steps": 9}
    assert attack.steps == 5
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['stepz'\]"):
        attack.set_params(stepz=1)
    with pytest.raises(ValueError, match="steps"):
        attack.set_params(steps=0)


def test_every_component_derives_from_its_familys_base() -> None:
    """``get``/``create`` are typed to return the family's base class; that must hold."""
    for family in registry._FAMILY_MODULES:
        base = registry._family_base(family)
        for name in registry.available(family):
            assert issubclass(registry.get(family, name), base), (family, name)
    assert registry._family_base("evasion").__name__ == "EvasionAttack"
    assert registry._family_base("private_training") is Component  # no base of its own


def test_register_refuses_a_class_outside_the_familys_base(scratch_registry: None) -> None:
    class NotAnAttack(Component):
        pass

    with pytest.raises(TypeError, match="NotAnAttack must derive from EvasionAttack"):
        registry.register("evasion", "not_an_attack")(NotAnAttack)
    assert "not_an_attack" not in registry.available("evasion")
