"""The shape the UI keeps as features arrive: small modules, a window that only binds, panels
that know their model and not each other."""

from __future__ import annotations

import re
from pathlib import Path

import studio.ui

UI = Path(studio.ui.__file__).parent


def test_no_ui_module_reaches_400_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in UI.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n >= 400} == {}
    assert sizes["main_window.py"] < 360


def test_the_window_never_talks_to_the_worker_or_the_queue() -> None:
    source = (UI / "main_window.py").read_text()
    # the session is the only thing it connects to; queue_view is a widget bound to the session
    assert not re.findall(r"\b(?:worker|queue)\b\.", source.replace("queue_view", ""))
    assert "WorkerMessage" not in source and "JobQueue" not in source


def test_no_panel_holds_another_panel(make_window) -> None:
    window = make_window(wait_loaded=False)
    panels = [
        window.prompts,
        window.params,
        window.controls,
        window.queue_view,
        window.canvas,
        window.insight,
        window.gallery,
        window.status,
        window.banner,
    ]
    for panel in panels:
        held = [v for v in vars(panel).values() if any(v is other for other in panels)]
        assert held == [], f"{type(panel).__name__} holds {held}"
