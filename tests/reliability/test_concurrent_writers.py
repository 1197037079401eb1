"""Several threads and several processes saving into one output folder at the same moment.

Every writer saves the same request (same seed, same prompt), so all of them want the same
names at once; each image has its own colour, so a clobbered file would show another writer's
pixels. Afterwards: one file per save, every path distinct, every file complete with its
settings and its own pixels, no temporary file left. tests/engine/test_output.py covers one
writer (names never reused, no overwrite); these are the races.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from studio.engine import output
from studio.engine.metadata import read_settings
from studio.engine.output import OutputFolder, atomic_write_bytes, save_result
from studio.engine.request import GenerationRequest, GenerationResult

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 5, 1, 13, 45, 9)  # one date folder for every writer
GUARD_S = 300  # hang guard only
PATTERNS = ["{date}/{counter:05}-{seed}-{prompt}", "{seed}-{prompt}", "{prompt}/{seed}"]


def colour(writer: int, k: int) -> tuple[int, int, int]:
    return (writer * 16 % 256, k * 8 % 256, 77)


def result_for(writer: int, k: int) -> GenerationResult:
    request = GenerationRequest(prompt="the same prompt", seed=42, width=16, height=16)
    image = Image.new("RGB", (16, 16), colour(writer, k))
    return GenerationResult(request, images=[image], seeds=[42], model_name="demo")


def check_saved(root: Path, saved: dict[Path, tuple[int, int, int]], expected: int) -> None:
    """`saved` maps each path a writer got back to its colour: all distinct, all intact."""
    assert len(saved) == expected  # distinct paths: no two writers were handed the same name
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert files == sorted(saved)  # nothing more (no temporary files), nothing less
    for path, rgb in saved.items():
        with Image.open(path) as image:
            assert image.getpixel((8, 8)) == rgb, f"{path} holds another writer's image"
        assert read_settings(path).request.seed == 42


def run_threads(n: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def body(i: int) -> None:
        try:
            start.wait(GUARD_S)
            work(i)
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD_S)
    assert not any(t.is_alive() for t in threads), "a writer hangs"
    assert errors == []


@pytest.mark.parametrize("pattern", PATTERNS)
def test_threads_saving_the_same_request_never_clobber_each_other(tmp_path, pattern):
    threads, per_thread = 8, 6
    root = tmp_path / "out"
    saved: dict[Path, tuple[int, int, int]] = {}
    lock = threading.Lock()

    def work(i: int) -> None:
        folder = OutputFolder(root, pattern)  # each writer its own, as separate windows would
        for k in range(per_thread):
            [path] = save_result(result_for(i, k), folder, now=NOW)
            with lock:
                assert path not in saved
                saved[path] = colour(i, k)

    run_threads(threads, work)
    check_saved(root, saved, threads * per_thread)


WRITER = """
import json, os, sys, time
from studio.engine.output import OutputFolder, save_result
sys.path.insert(0, TESTS)
from test_concurrent_writers import NOW, result_for
writer, count, root, pattern, go = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:6]
open(go + ".ready-" + str(writer), "w").close()
deadline = time.monotonic() + 300
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.001)
folder = OutputFolder(root, pattern)
paths = [str(save_result(result_for(writer, k), folder, now=NOW)[0]) for k in range(count)]
print(json.dumps(paths))
"""


@pytest.mark.parametrize("pattern", PATTERNS[:2])
def test_processes_saving_the_same_request_never_clobber_each_other(tmp_path, pattern):
    processes, per_process = 4, 10
    root, go = tmp_path / "out", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = f"TESTS = {str(Path(__file__).parent)!r}\n" + WRITER
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(i), str(per_process), str(root), pattern, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env=env,
            text=True,
        )
        for i in range(processes)
    ]
    # every writer has started Python and imported the engine before any saves: all at once
    deadline = time.monotonic() + GUARD_S
    while len(list(tmp_path.glob("go.ready-*"))) < processes:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "the writers never started"
        time.sleep(0.01)
    go.write_text("go")
    saved: dict[Path, tuple[int, int, int]] = {}
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=GUARD_S)
        assert proc.returncode == 0, err
        for k, path in enumerate(json.loads(out)):
            assert Path(path) not in saved
            saved[Path(path)] = colour(i, k)
    check_saved(root, saved, processes * per_process)


def test_writers_racing_for_one_exact_name_leave_the_winners_file(tmp_path):
    target = tmp_path / "out" / "image.png"
    writers = 8
    outcomes: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            atomic_write_bytes(target, f"writer {i}".encode() * 1000, overwrite=False)
            outcomes[i] = "wrote"
        except FileExistsError:
            outcomes[i] = "refused"

    run_threads(writers, work)
    winners = [i for i, outcome in outcomes.items() if outcome == "wrote"]
    assert len(winners) == 1 and len(outcomes) == writers
    assert target.read_bytes() == f"writer {winners[0]}".encode() * 1000
    assert [p.name for p in target.parent.iterdir()] == ["image.png"]


def test_without_hard_links_two_writers_never_clobber_each_other(tmp_path, monkeypatch):
    target = tmp_path / "out" / "image.png"
    both_checked = threading.Barrier(2)
    real_lexists = os.path.lexists

    def no_link(src, dst, **kwargs):
        raise OSError(1, "Operation not permitted")  # as on FAT

    def lexists_then_wait(path):
        found = real_lexists(path)
        if Path(path) == target:
            try:  # the schedule under test: both writers check before either renames
                both_checked.wait(5)
            except threading.BrokenBarrierError:
                pass
        return found

    monkeypatch.setattr(output.os, "link", no_link)
    monkeypatch.setattr(output.os.path, "lexists", lexists_then_wait)
    outcomes: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            atomic_write_bytes(target, f"writer {i}".encode(), overwrite=False)
            outcomes[i] = "wrote"
        except FileExistsError:
            outcomes[i] = "refused"

    run_threads(2, work)
    monkeypatch.undo()
    assert sorted(outcomes.values()) == ["refused", "wrote"]
