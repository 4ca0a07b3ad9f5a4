"""library_settings: a config table takes each knob's type, default and range from its library dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytest
from annotated_types import Interval
from pydantic import Field, ValidationError

from gaitwatch.daemon.library_settings import (
    BorrowingSection,
    ConfigSection,
    LibrarySettingsError,
    LibraryTable,
    borrow,
    library_settings,
)


@dataclass(frozen=True, slots=True)
class Knobs:
    window_s: Annotated[float, Interval(ge=5.0, le=60.0)] = 8.0
    hop_s: Annotated[float, Interval(gt=0.0, le=60.0)] = 1.0
    hidden: float = 3.0

    def __post_init__(self) -> None:
        if self.hop_s > self.window_s:
            raise ValueError(f"Knobs.hop_s must not exceed window_s; got {self.hop_s}")


KNOBS = LibraryTable(Knobs, "window_s", "hop_s", hop_s=2.0)


class Config(ConfigSection):
    knobs: Annotated[Knobs, KNOBS] = Field(default_factory=KNOBS.default)


class Mixed(BorrowingSection):
    own: int = 1
    knob_hop_s: float = borrow(Knobs, "hop_s")


def test_a_library_table_is_the_library_object_with_the_library_range() -> None:
    assert Config().knobs == Knobs(hop_s=2.0)  # the daemon's default overrides the library's
    assert Config.model_validate({"knobs": {"window_s": 10}}).knobs == Knobs(window_s=10.0, hop_s=2.0)
    assert Config.model_validate({"knobs": {"window_s": 10}}).model_dump() == {
        "knobs": {"window_s": 10.0, "hop_s": 2.0}
    }
    for bad, loc in (({"window_s": 4}, ("knobs", "window_s")), ({"hidden": 1}, ("knobs", "hidden"))):
        with pytest.raises(ValidationError) as info:
            Config.model_validate({"knobs": bad})
        assert info.value.errors()[0]["loc"] == loc
    with pytest.raises(ValidationError) as info:
        Config.model_validate({"knobs": {"window_s": 5, "hop_s": 6}})
    refusal = info.value.errors()[0]["ctx"]["error"]
    assert isinstance(refusal, LibrarySettingsError) and refusal.key == "hop_s"
    assert str(refusal).startswith("hop_s must not exceed window_s")


def test_a_borrowed_key_builds_its_library_object_under_its_own_name() -> None:
    mixed = Mixed.model_validate({"knob_hop_s": 3.0})
    assert library_settings(Knobs, mixed) == Knobs(hop_s=3.0)
    assert library_settings(Knobs, mixed, window_s=20.0) == Knobs(window_s=20.0, hop_s=3.0)
    with pytest.raises(ValidationError, match="greater than 0"):
        Mixed.model_validate({"knob_hop_s": 0.0})
    with pytest.raises(ValidationError) as info:
        Mixed.model_validate({"knob_hop_s": 9.0})  # the library refuses it: checked while validating
    assert info.value.errors()[0]["ctx"]["error"].key == "knob_hop_s"


def test_a_borrowed_key_must_be_declared_with_the_library_type() -> None:
    with pytest.raises(TypeError, match="knob_hop_s is declared <class 'int'>"):

        class Wrong(BorrowingSection):
            knob_hop_s: int = borrow(Knobs, "hop_s")

    with pytest.raises(TypeError, match="no field"):
        borrow(Knobs, "hop")
    with pytest.raises(TypeError, match="not exposed"):
        LibraryTable(Knobs, "window_s", hidden=1.0)
