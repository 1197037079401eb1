from __future__ import annotations

import json
from pathlib import Path

from studio import settings as settings_module
from studio.settings import Settings
from studio.ui.settings_dialog import SettingsDialog


def test_memory_choice_and_vae_tiling_are_edited_and_saved(qtbot, session, tmp_path: Path):
    session.settings.memory_policy = "model_offload"
    dialog = SettingsDialog(session.settings, session.state)
    qtbot.addWidget(dialog)
    assert dialog.memory_policy.currentData() == "model_offload"
    labels = [dialog.memory_policy.itemText(i) for i in range(dialog.memory_policy.count())]
    assert labels[0] == "Automatic" and len(labels) == 4
    assert not dialog.vae_tiling.isChecked()

    dialog.memory_policy.setCurrentIndex(dialog.memory_policy.findData("sequential_offload"))
    dialog.vae_tiling.setChecked(True)
    dialog.apply_to(session.settings, session.state)
    assert session.settings.memory_policy == "sequential_offload"
    assert session.settings.vae_tiling is True

    path = tmp_path / "settings.json"
    settings_module.save(session.settings, path)
    loaded = settings_module.load(path)
    assert loaded.error == ""
    assert (loaded.settings.memory_policy, loaded.settings.vae_tiling) == (
        "sequential_offload",
        True,
    )


def test_an_unknown_memory_policy_in_the_file_falls_back_to_automatic(tmp_path: Path):
    path = tmp_path / "settings.json"
    data = Settings().to_dict() | {"memory_policy": "lowvram", "vae_tiling": 1}
    path.write_text(json.dumps(data))
    outcome = settings_module.load(path)
    assert outcome.settings.memory_policy == "auto" and outcome.settings.vae_tiling is False
    assert outcome.partial and "memory_policy 'lowvram'" in outcome.message
    assert "vae_tiling must be true or false" in outcome.message


def test_the_memory_setting_reaches_the_worker_and_its_cache(qtbot, session):
    session.settings.memory_policy, session.settings.vae_tiling = "none", True
    session.apply_settings()
    assert session.worker.worker.memory == ("none", True)
    session.start()
    qtbot.waitUntil(lambda: session.loaded_model is not None, timeout=60_000)
    cache = session.worker.worker._cache
    assert (cache.memory_policy, cache.vae_tiling) == ("none", True)


def test_a_job_note_from_the_engine_shows_in_the_banner(qtbot, session, monkeypatch):
    import dataclasses

    from studio.engine import generate as generate_module

    real = generate_module.generate

    def with_note(*args, **kwargs):
        note = "The VAE gave NaNs in half precision; decoded again in fp32."
        return dataclasses.replace(real(*args, **kwargs), notes=(note,))

    monkeypatch.setattr(generate_module, "generate", with_note)
    session.state.steps = 2
    session.start()
    jobs = session.generate()
    qtbot.waitUntil(lambda: jobs[0].state.name == "done", timeout=120_000)
    assert session.notice is not None and "decoded again in fp32" in session.notice.text
