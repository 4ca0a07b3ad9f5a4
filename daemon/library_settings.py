"""How the config's TOML tables become the library's settings, so that each setting is declared once.

A knob of the detector, tracker, pose or gait stage is declared in one place: a field of the library's frozen
settings dataclass (``TrackerSettings``, ``GaitSettings``, ...), with its type, its default, the range an admin
may configure as ``Annotated`` metadata (``Interval(ge=5.0, le=60.0)``, which pydantic reads natively) and its
meaning and trade-off in the class docstring. The daemon's config only says which of those fields are TOML
keys, in one of two ways:

- ``LibraryTable(GaitSettings, "window_s", "hop_s")``: a TOML table that *is* one library settings class. The
  validated value is the library object itself (``settings.gait`` is a ``GaitSettings``); the fields not named
  keep their library default and are unknown keys in TOML.
- ``borrow(RecoverySettings, "crops_per_frame")``: one key of a table that feeds several library objects
  ([pose], [detector]); ``library_settings(RecoverySettings, settings.detector)`` builds the object from every key
  of the table that borrows from it, whatever the key is called in TOML.

Either way the library object is built while the config is validated, so a value its ``__post_init__`` refuses
(``min_score`` above ``high_score``, a ``tile_fraction`` of 0.05) is a config error naming the key, reported by
check-config with exit code 78, instead of a crash when the daemon assembles its pipeline.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Generic, Self, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, create_model, model_validator
from pydantic_core import CoreSchema, PydanticUndefined, core_schema

T = TypeVar("T")


class ConfigSection(BaseModel):
    """Base of every config table: unknown keys are errors (a misspelled key must not silently keep its
    default), values are frozen, and ``inf``/``nan`` (valid TOML floats) are refused: they are no valid
    duration, rate or threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclasses.dataclass(frozen=True, slots=True)
class BorrowedField:
    """Pydantic field metadata: the library settings field a config key stands for."""

    cls: type
    name: str


def _library_field(cls: type, name: str) -> tuple[Any, Any]:
    """The full annotation (with its ``Annotated`` metadata) and the default of ``cls.name``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise TypeError(f"{cls.__name__} has no field {name!r}")
    f = fields[name]
    if f.default is not dataclasses.MISSING:
        default: Any = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = PydanticUndefined  # required in the library, required in TOML
    return typing.get_type_hints(cls, include_extras=True)[name], default


def _split(annotation: Any) -> tuple[Any, list[Any]]:
    """``Annotated[float, m1, m2]`` -> ``(float, [m1, m2])``; a plain annotation has no metadata."""
    if get_origin(annotation) is Annotated:
        base, *metadata = get_args(annotation)
        return base, metadata
    return annotation, []


class LibrarySettingsError(ValueError):
    """A library settings class refused configured values (its ``__post_init__``), in TOML terms: ``key`` is
    the table's key the message is first about (None when it names none), so the config error can name the
    key path as for any other bad value."""

    def __init__(self, message: str, key: str | None) -> None:
        super().__init__(message)
        self.key = key


def _build(cls: type[T], values: Mapping[str, Any], key_of: Mapping[str, str]) -> T:
    """``cls(**values)``; a ``__post_init__`` refusal becomes a ``LibrarySettingsError`` whose message names the TOML
    keys instead of the library's ``Class.field``."""
    try:
        return cls(**values)
    except ValueError as exc:
        message = str(exc)
        mentioned = {message.find(f"{cls.__name__}.{name}"): key for name, key in key_of.items()}
        mentioned.pop(-1, None)
        for name, key in key_of.items():
            message = message.replace(f"{cls.__name__}.{name}", key)
        message = re.sub(rf"^{cls.__name__}:? ", "", message)
        raise LibrarySettingsError(message, mentioned[min(mentioned)] if mentioned else None) from None


class LibraryTable(Generic[T]):
    """Pydantic metadata for a config table that is one library settings class, exposing ``keys``::

        gait: Annotated[GaitSettings, GAIT_TABLE] = Field(default_factory=GAIT_TABLE.default)

    The table validates against a model generated from the dataclass's fields (types, defaults, ``Annotated``
    ranges), then becomes the library object. ``defaults`` overrides a library default for the daemon (say
    why where you do). It serialises back to ``keys`` only, so ``model_dump`` (the SIGHUP reload diff) shows
    the TOML table."""

    def __init__(self, cls: type[T], *keys: str, **defaults: Any) -> None:
        unknown = set(defaults) - set(keys)
        if unknown:
            raise TypeError(f"defaults for keys not exposed: {sorted(unknown)}")
        self.cls = cls
        self.keys = keys
        specs: dict[str, Any] = {}
        for key in keys:
            annotation, default = _library_field(cls, key)
            specs[key] = (annotation, defaults.get(key, default))
        self.model: type[ConfigSection] = create_model(
            cls.__name__, __base__=ConfigSection, __doc__=cls.__doc__, __module__=cls.__module__, **specs
        )

    def default(self) -> T:
        """The library object of an absent table (every key at its default)."""
        return self._to_library(self.model())

    def _to_library(self, table: BaseModel) -> T:
        return _build(self.cls, {key: getattr(table, key) for key in self.keys}, {key: key for key in self.keys})

    def _to_table(self, value: Any) -> Any:
        # An already built library object (model_copy, a test) is validated like the table it came from.
        return {key: getattr(value, key) for key in self.keys} if isinstance(value, self.cls) else value

    def _serialise(self, value: Any, info: core_schema.SerializationInfo) -> Any:
        return self.model.model_construct(**self._to_table(value)).model_dump(mode=info.mode)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(
            self._to_table,
            core_schema.chain_schema(
                [handler.generate_schema(self.model), core_schema.no_info_plain_validator_function(self._to_library)]
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(self._serialise, info_arg=True),
        )


def borrow(cls: type, name: str, *, default: Any = PydanticUndefined, description: str | None = None) -> Any:
    """The pydantic field of a config key standing for the library field ``cls.name``: the library's default
    and ``Annotated`` range (``default=`` overrides the default, e.g. None for a key optional in TOML). Declare
    the key with the library field's type (checked when the table's class is created)::

        recovery_crops_per_frame: int = borrow(RecoverySettings, "crops_per_frame")
    """
    annotation, library_default = _library_field(cls, name)
    info = Field(
        library_default if default is PydanticUndefined else default,
        description=description,
    )
    info.metadata.extend([*_split(annotation)[1], BorrowedField(cls, name)])
    return info


def borrowed_keys(section: type[BaseModel]) -> Iterator[tuple[str, BorrowedField]]:
    """(key, library field it stands for) of every borrowed key of a config table class."""
    for key, info in section.model_fields.items():
        for item in info.metadata:
            if isinstance(item, BorrowedField):
                yield key, item


class BorrowingSection(ConfigSection):
    """A config table whose keys feed several library objects (declared with ``borrow``); each of them is
    built once while the table is validated, so that the library's own checks run at check-config time."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for key, source in borrowed_keys(cls):
            declared = cls.model_fields[key].annotation
            library = _split(_library_field(source.cls, source.name)[0])[0]
            if declared not in (library, library | None):
                raise TypeError(
                    f"{cls.__name__}.{key} is declared {declared}, but {source.cls.__name__}.{source.name} is {library}"
                )

    @model_validator(mode="after")
    def _library_accepts(self) -> Self:
        for cls in {source.cls for _, source in borrowed_keys(type(self))}:
            library_settings(cls, self)
        return self


def library_settings(cls: type[T], section: BaseModel, **fixed: Any) -> T:
    """The library settings object ``cls`` built from every key of ``section`` borrowed from it (the
    library's defaults for the rest); ``fixed`` sets fields the daemon decides itself."""
    values: dict[str, Any] = {}
    key_of: dict[str, str] = {}
    for key, source in borrowed_keys(type(section)):
        if source.cls is cls:
            values[source.name] = getattr(section, key)
            key_of[source.name] = key
    if not values:
        raise TypeError(f"{type(section).__name__} borrows no key from {cls.__name__}")
    return _build(cls, {**values, **fixed}, key_of)
