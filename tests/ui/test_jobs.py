"""JobQueue: order, adding while running, removing pending jobs, cancel, failures."""

from __future__ import annotations

from studio.engine.request import GenerationRequest, GenerationResult
from studio.ui.jobs import JobQueue, JobState


def _queue(qtbot):
    queue = JobQueue()
    started, done = [], []
    queue.start_requested.connect(started.append)
    queue.job_done.connect(done.append)
    return queue, started, done


def test_jobs_wait_for_the_worker_then_run_one_at_a_time_in_order(qtbot) -> None:
    queue, started, done = _queue(qtbot)
    a = queue.add(GenerationRequest(seed=1))
    b = queue.add(GenerationRequest(seed=2))
    assert started == [] and queue.pending() == [a, b]  # the worker is not up yet

    queue.set_ready()
    assert started == [a] and a.state is JobState.running and queue.current is a
    c = queue.add(GenerationRequest(seed=3))  # added while one runs
    assert started == [a] and queue.pending() == [b, c]

    queue.job_finished(a, GenerationResult(a.request, images=[]), [])
    assert a.state is JobState.done and started == [a, b]
    queue.job_failed(b, "boom")
    assert b.state is JobState.failed and b.error == "boom" and started == [a, b, c]
    queue.job_finished(c, GenerationResult(c.request, cancelled=True), [])
    assert c.state is JobState.cancelled
    assert done == [a, b, c] and not queue.is_busy()
    assert queue.history() == [a, b, c]


def test_removing_a_pending_job_never_starts_it(qtbot) -> None:
    queue, started, done = _queue(qtbot)
    queue.set_ready()
    a, b, c = (queue.add(GenerationRequest(seed=s)) for s in (1, 2, 3))
    assert queue.remove(b.id)
    assert b.state is JobState.cancelled and done == [b]
    assert not queue.remove(a.id)  # running: it can only be cancelled
    assert not queue.remove(999)
    queue.job_finished(a, GenerationResult(a.request), [])
    assert started == [a, c]


def test_cancel_sets_the_running_jobs_event_and_cancel_all_drops_the_rest(qtbot) -> None:
    queue, started, done = _queue(qtbot)
    queue.set_ready()
    a, b = queue.add(GenerationRequest()), queue.add(GenerationRequest())
    queue.cancel_current()
    assert a.cancel.is_set() and not b.cancel.is_set()
    queue.cancel_all()
    assert b.state is JobState.cancelled and queue.pending() == []
    assert "txt2img" in a.label() and f"#{a.id}" in a.label()


def test_history_is_bounded(qtbot) -> None:
    from studio.ui.jobs import MAX_HISTORY

    queue, started, done = _queue(qtbot)
    queue.set_ready()
    for _ in range(MAX_HISTORY + 5):
        job = queue.add(GenerationRequest())
        queue.job_finished(job, GenerationResult(job.request), [])
    assert len(queue.history()) == MAX_HISTORY and queue.history()[-1] is job


# ---- the output folder: checked before any work; a failed save keeps the image ---------------
# The tests run as root, which writes into a chmod'ed read-only folder anyway: a regular file in
# the folder's place stops root too.
def test_a_broken_output_folder_queues_nothing(session, tmp_path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be")
    session.set_output_dir(str(blocked))
    assert session.generate() == []
    assert "is not a folder; choose another folder" in session.error
    assert not session.queue.is_busy() and blocked.read_text().startswith("a file")


def test_the_worker_checks_the_folder_again_before_any_work(qtbot, tmp_path) -> None:
    from studio.ui.jobs import Job
    from studio.ui.worker import GenerationWorker, WorkerEvent

    folder = tmp_path / "out"
    job = Job(GenerationRequest(), output_dir=folder)
    folder.write_text("replaced by a file after the job was queued")
    worker = GenerationWorker()  # no engine: the folder check must come before any model work
    said = []
    worker.message.connect(said.append)
    worker.run_job(job)
    assert [m.event for m in said] == [WorkerEvent.job_started, WorkerEvent.job_failed]
    assert "is not a folder; choose another folder" in said[-1].text


def test_a_failed_save_keeps_the_image_unsaved_in_the_gallery(
    qtbot, make_window, tmp_path, monkeypatch
) -> None:
    import shutil
    import tempfile

    import studio.engine.generate as engine_generate
    from studio.engine.metadata import read_settings
    from studio.engine.output import is_unsaved

    temp = tmp_path / "system-temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where kept images go
    window = make_window()
    out = make_window.output_dir
    real = engine_generate.generate

    def generate_then_break_the_folder(*args, **kwargs):
        result = real(*args, **kwargs)
        shutil.rmtree(out)  # the folder passed its checks; now a file takes its place
        out.write_text("someone put a file here")
        return result

    monkeypatch.setattr(engine_generate, "generate", generate_then_break_the_folder)
    with qtbot.waitSignal(window.session.job_done, timeout=60_000) as blocker:
        assert window.session.generate(), window.banner.text()
    job = blocker.args[0]

    assert job.state is JobState.done and job.save_error
    [kept] = job.paths
    assert is_unsaved(kept) and kept.parent.parent == temp
    assert read_settings(kept).request.prompt == "a red cube"
    assert window.gallery.unsaved_paths() == [kept] == [window.gallery.current_path()]
    assert window.gallery.list.currentItem().text() == "unsaved"
    text = window.banner.text()
    assert window.banner.kind == "error" and "could not be saved into" in text
    assert str(out) in text and "use Save as… to keep it" in text
    assert out.read_text() == "someone put a file here"
    # Save as… still works from the kept copy, settings included
    assert window.gallery.save_as.isEnabled()
    target = tmp_path / "saved" / "kept.png"
    target.parent.mkdir()
    assert window.save_as(kept, target) == target
    assert read_settings(target).request.prompt == "a red cube"
