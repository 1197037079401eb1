from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.ui.jobs import JobState


def _generate(qtbot, window, timeout: int = 60_000):
    with qtbot.waitSignal(window.session.job_done, timeout=timeout) as blocker:
        jobs = window.session.generate()
        assert jobs, window.banner.text()
    return blocker.args[0]


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".png", ".jpg", ".webp"))


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 17.2 GB)"),
    ],
)
def test_out_of_memory_in_a_job_gives_its_message_and_the_next_job_runs(
    qtbot, make_window, monkeypatch, error
):
    import studio.engine.generate as engine_generate

    window = make_window()
    loaded = window.session.loaded_model
    real_generate = engine_generate.generate
    calls = {"n": 0}

    def out_of_memory_once(request, cache, on_step=None, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:

            def allocate(update):  # fails inside the running pipeline, at its first step
                raise error

            return real_generate(request, cache, on_step=allocate, **kwargs)
        return real_generate(request, cache, on_step=on_step, **kwargs)

    monkeypatch.setattr(engine_generate, "generate", out_of_memory_once)
    job = _generate(qtbot, window)
    assert job.state is JobState.failed
    text = window.banner.text()
    assert "Out of memory" in text and "smaller image size" in text and "offload" in text
    assert "Traceback" not in text
    assert _images(make_window.output_dir) == []

    # the same loaded model (no reload) makes the next image
    job = _generate(qtbot, window)
    assert job.state is JobState.done
    assert window.session.loaded_model is loaded
    assert len(_images(make_window.output_dir)) == 1
