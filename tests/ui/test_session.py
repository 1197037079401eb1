"""The session without a window: a fake engine for queue states, errors and progress (as
krita-ai-diffusion tests its model with a mock client), then the real worker thread to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QObject, Signal

from studio.engine.metadata import read_settings
from studio.engine.models import ModelInfo
from studio.engine.request import GenerationResult, StepUpdate
from studio.ui.jobs import Job, JobState
from studio.ui.session import Session
from studio.ui.worker import LoadedModel, WorkerEvent, WorkerMessage


class FakeEngine(QObject):
    """Stands in for GenerationThread: records what the session asks, reports what tests say."""

    message = Signal(WorkerMessage)

    def __init__(self) -> None:
        super().__init__()
        self.started = False
        self.loads: list[str] = []
        self.runs: list[Job] = []

    def start(self) -> None:
        self.started = True

    def load_model(self, ref: str) -> None:
        self.loads.append(ref)

    def set_allow_downloads(self, allow: bool) -> None:
        self.allow_downloads = allow

    def set_memory(self, policy: str, vae_tiling: bool) -> None:
        self.memory = (policy, vae_tiling)

    def run(self, job: Job) -> None:
        self.runs.append(job)

    def is_running(self) -> bool:
        return self.started

    def stop(self) -> None:
        self.started = False

    def say(self, event: WorkerEvent, **fields: object) -> None:
        self.message.emit(WorkerMessage(event, **fields))


def _loaded(ref: str, native: int = 64) -> LoadedModel:
    info = ModelInfo(ref, Path(ref).name, Path(ref), "diffusers", "sd1", native)
    return LoadedModel(ref, info, "cpu", "float32", None, 0.1)


@pytest.fixture
def fake(qtbot, tmp_path: Path):
    engine = FakeEngine()
    session = Session(tmp_path / "config", tmp_path / "out", model="/m/tiny", worker=engine)
    session.state.width = session.state.height = 64
    session.state.steps = 4
    session.start()
    engine.say(WorkerEvent.ready)
    engine.say(WorkerEvent.model_loaded, ref="/m/tiny", loaded=_loaded("/m/tiny"))
    yield session, engine
    session.shutdown()


def test_jobs_queue_one_at_a_time_with_progress_and_the_next_starts_after_each_end(fake):
    session, engine = fake
    session.state.seed, session.state.batch_count = 5_000_000_000, 3
    jobs = session.generate()
    assert [j.request.seed for j in jobs] == [5_000_000_000, 5_000_000_001, 5_000_000_002]
    assert engine.runs == [jobs[0]]  # one at a time
    assert [j.state for j in jobs] == [JobState.running, JobState.queued, JobState.queued]

    engine.say(WorkerEvent.job_started, job=jobs[0])
    assert (session.progress.value, session.progress.maximum) == (0, 4)
    preview = np.zeros((8, 8, 3), np.uint8)
    previews: list[StepUpdate] = []
    session.preview_ready.connect(previews.append)
    engine.say(WorkerEvent.step, job=jobs[0], update=StepUpdate(2, 4, preview))
    assert session.progress.value == 2 and session.progress.text.startswith("step 2/4")
    assert len(previews) == 1

    image = Image.new("RGB", (64, 64))
    result = GenerationResult(jobs[0].request, [image], [jobs[0].request.seed], 0.5)
    shown: list[Job] = []
    session.result_ready.connect(shown.append)
    engine.say(WorkerEvent.job_finished, job=jobs[0], result=result, paths=(Path("/o/a.png"),))
    assert jobs[0].state is JobState.done and shown == [jobs[0]]
    assert session.progress.text == "done in 0.5 s"
    assert session.state.last_seed == 5_000_000_000  # 64 bits through the message
    assert engine.runs == jobs[:2]

    # a failure is shown, and the queue goes on
    engine.say(WorkerEvent.job_started, job=jobs[1])
    engine.say(WorkerEvent.job_failed, job=jobs[1], text="out of memory")
    assert jobs[1].state is JobState.failed
    assert session.error == f"Job #{jobs[1].id} failed: out of memory"
    assert engine.runs == jobs

    # a cancelled job saves nothing and says so
    session.cancel()
    assert jobs[2].cancel.is_set()
    cancelled = GenerationResult(jobs[2].request, cancelled=True)
    engine.say(WorkerEvent.job_started, job=jobs[2])
    engine.say(WorkerEvent.step, job=jobs[2], update=StepUpdate(1, 4))  # late: ignored
    engine.say(WorkerEvent.job_finished, job=jobs[2], result=cancelled)
    assert jobs[2].state is JobState.cancelled and session.is_idle()
    assert session.progress.text.endswith("cancelled")


def test_generate_clears_the_error_and_an_invalid_request_queues_nothing(fake):
    session, engine = fake
    session.error = "an old failure"
    session.state.width = 100
    assert session.generate() == []
    assert "multiple of 8" in session.error and engine.runs == []
    session.state.width = 64
    with pytest.raises(ValueError):
        session.state.seed = 2**63  # past int64 (the seed field takes 19 digits): refused
    session.state.seed, session.state.batch_size = 2**63 - 1, 2  # image 2 would pass int64
    assert session.generate() == [] and "Seed" in session.error
    session.state.seed, session.state.batch_size = 7, 1
    assert len(session.generate()) == 1 and session.error == ""


def test_model_choice_loads_it_a_failure_is_an_error_and_sizes_follow_a_new_model(fake):
    session, engine = fake
    assert session.loaded_model.ref == "/m/tiny" and "ready" in session.load_status
    session.load_model("/m/other")
    assert engine.loads == ["/m/other"] and session.known_models == ["/m/other"]
    engine.say(WorkerEvent.model_failed, ref="/m/other", text="not a model folder")
    assert session.loaded_model is None and session.error == "not a model folder"
    assert "not loaded" in session.model_status

    # a file refused before loading (here: a LoRA) leaves the loaded model in use
    session.load_model("/m/lora.safetensors")
    engine.say(
        WorkerEvent.model_failed,
        ref="/m/lora.safetensors",
        text="lora.safetensors is a LoRA, not a Stable Diffusion checkpoint.",
        loaded=_loaded("/m/tiny"),
    )
    assert session.loaded_model.ref == "/m/tiny" and session.state.model == "/m/tiny"
    assert "is a LoRA" in session.error and "kept" in session.load_status

    session.load_model("/m/big")
    engine.say(WorkerEvent.model_loaded, ref="/m/big", loaded=_loaded("/m/big", 512))
    assert (session.state.width, session.state.height) == (512, 512)
    assert "512px" in session.model_status


def test_inpaint_snapshots_the_canvas_mask_and_errors_without_one(fake):
    session, engine = fake

    class Canvas:
        mask: np.ndarray | None = None

        def image(self) -> Image.Image:
            return Image.new("RGB", (64, 64), (9, 9, 9))

        def mask_array(self) -> np.ndarray | None:
            return self.mask

    canvas = Canvas()
    session.attach_canvas(canvas)
    session.state.mode = "inpaint"
    assert session.generate() == [] and "mask" in session.error
    canvas.mask = np.zeros((64, 64), np.uint8)
    canvas.mask[10:20, 10:20] = 255
    session.state.mask_blur, session.state.inpaint_only_masked = 6, True
    (job,) = session.generate()
    r = job.request
    assert np.array_equal(np.asarray(r.mask), canvas.mask)
    assert (r.mask_blur, r.inpaint_only_masked, r.init_image.getpixel((0, 0))) == (
        6,
        True,
        (9,) * 3,
    )


def test_the_real_worker_thread_generates_to_disk_without_a_window(qtbot, tmp_path, tiny_model):
    session = Session(tmp_path / "config", tmp_path / "out", device="cpu", model=str(tiny_model))
    try:
        state = session.state
        state.steps, state.sampler, state.seed = 3, "Euler", 5_000_000_000
        state.width = state.height = 64
        session.start()
        qtbot.waitUntil(lambda: session.loaded_model is not None, timeout=60_000)
        with qtbot.waitSignal(session.job_done, timeout=60_000) as done:
            (job,) = session.generate()
        assert done.args[0] is job and job.state is JobState.done, job.error
        (path,) = job.paths
        assert path.is_file() and path.is_relative_to(tmp_path / "out")
        assert read_settings(path).request.seed == 5_000_000_000
    finally:
        session.shutdown()
    assert not session.worker.is_running() and not session.background.isRunning()
