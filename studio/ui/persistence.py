"""Save and restore the properties a model object marks `persist=True`, as a JSON-able dict.

One declaration per value (in the model class) is the only list: nothing here names a field.
`declare_persisted(StudioState)` hands studio.settings the check of those declarations, so a
settings file is checked value by value when it is loaded, before any widget sees it.
"""

from __future__ import annotations

from typing import Any

from studio import settings as settings_io
from studio.ui.properties import Property, properties


def persisted(obj: object) -> dict[str, Any]:
    """The persistent properties' current values, by name."""
    return {p.name: getattr(obj, p.name) for p in properties(obj) if p.persist}


def restore(obj: object, values: dict[str, Any]) -> list[str]:
    """Set each persistent property found in `values`; returns the names that were refused.

    A value of the wrong type or outside its range (a hand-edited or older file) leaves its
    property as it was.
    """
    refused = []
    for prop in properties(obj):
        if not prop.persist or prop.name not in values:
            continue
        try:
            setattr(obj, prop.name, values[prop.name])
        except (TypeError, ValueError):
            refused.append(prop.name)
    return refused


def persistent_properties(cls: type) -> dict[str, Property]:
    """A class's persistent Property declarations, by name (base classes included)."""
    found: dict[str, Property] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            if isinstance(attr, Property) and attr.persist:
                found[name] = attr
    return found


def check_persisted(cls: type, values: Any) -> tuple[dict[str, Any], list[str]]:
    """The values `cls` would take, and one line per value it would refuse.

    Names `cls` does not persist (from an older version) are dropped without a word.
    """
    if not isinstance(values, dict):
        return {}, [f"the saved window state is {type(values).__name__}, not an object"]
    kept: dict[str, Any] = {}
    problems: list[str] = []
    for name, prop in persistent_properties(cls).items():
        if name not in values:
            continue
        try:
            kept[name] = prop.checked(values[name])
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
    return kept, problems


def declare_persisted(cls: type) -> None:
    """Make studio.settings check the `last` values of every file it loads against `cls`."""
    settings_io.set_last_check(lambda values: check_persisted(cls, values))
