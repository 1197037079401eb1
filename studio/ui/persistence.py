"""Save and restore the properties a model object marks `persist=True`, as a JSON-able dict.

One declaration per value (in the model class) is the only list: nothing here names a field.
"""

from __future__ import annotations

from typing import Any

from studio.ui.properties import properties


def persisted(obj: object) -> dict[str, Any]:
    """The persistent properties' current values, by name."""
    return {p.name: getattr(obj, p.name) for p in properties(obj) if p.persist}


def restore(obj: object, values: dict[str, Any]) -> list[str]:
    """Set each persistent property found in `values`; returns the names that were refused.

    A value of the wrong type (a hand-edited or older file) leaves its property as it was.
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
