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
