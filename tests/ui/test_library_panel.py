"""The model library panel: a folder of tiny models of each kind, scanned in the background."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from studio.engine.request import GenerationRequest
from studio.ui.jobs import Job
from studio.ui.library_panel import IN_USE, LibraryPanel
from studio.ui.library_state import LibraryState
from studio.ui.session import Session
from tests.engine.test_library import write_library


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """An A1111-like install: webui/models/{Stable-diffusion,Lora,embeddings,VAE,ControlNet}."""
    root = tmp_path_factory.mktemp("webui")
    return root, write_library(root / "models")


def open_panel(qtbot, config: Path) -> tuple[Session, LibraryState, LibraryPanel]:
    session = Session(config_dir=config, output_dir=config.parent / "out", device="cpu")
    library = LibraryState(session)
    panel = LibraryPanel(library)
    qtbot.addWidget(panel)
    return session, library, panel


def wait_scanned(qtbot, library: LibraryState, scans: int = 1) -> None:
    qtbot.waitUntil(lambda: library.scans >= scans and not library.scanning, timeout=30_000)


def test_library_lists_every_kind_marks_the_model_in_use_and_remembers_folders(
    qtbot, tmp_path: Path, install
) -> None:
    root, files = install
    session, library, panel = open_panel(qtbot, tmp_path / "config")
    try:
        found = library.use_install(root)
        wait_scanned(qtbot, library)
        assert len(found) == 5 and library.folders == [str(f) for f in found]

        short = hashlib.sha256(files["checkpoint"].read_bytes()).hexdigest()[:10]
        size = f"{files['checkpoint'].stat().st_size / 2**20:.1f} MB"
        assert panel.rows("checkpoint") == [
            ("tiny-sd1", "SD 1.x", "eps", "512px", "fp32", size, short)
        ]
        assert [r[:2] for r in panel.rows("lora")] == [("tiny-lora", "SD 1.x")]
        assert [r[:2] for r in panel.rows("embedding")] == [("tiny-emb", "SD 1.x")]
        assert [r[:2] for r in panel.rows("vae")] == [("tiny-vae", "any")]
        assert [(r[0], r[1], r[4]) for r in panel.rows("controlnet")] == [
            ("tiny-control", "small SD-shaped", "fp16")
        ]
        # the malformed file is listed as unusable, with its reason, and did not stop the rest
        unusable = {r[0].split(":")[0]: r[0] for r in panel.rows("unusable")}
        assert set(unusable) == {"broken", "old"}
        assert "broken: is not a valid .safetensors file" in unusable["broken"]
        assert "pickle" in unusable["old"]
        assert panel.item_for(files["bad"]).isFirstColumnSpanned()  # the reason is readable
        assert "cannot be used" in panel.status.text()

        # choosing the checkpoint loads it (in the worker) and marks it as the model in use
        checkpoint = panel.item_for(files["checkpoint"])
        panel.tree.setCurrentItem(checkpoint)
        assert panel.load_button.isEnabled()
        panel.load_button.click()
        assert session.state.model == str(files["checkpoint"])
        assert panel.rows("checkpoint")[0][0] == IN_USE + "tiny-sd1"
        assert not panel.load_button.isEnabled()  # it is in use already
        # while it loads, the panel says what cancel does
        assert panel.note.isVisibleTo(panel)
        assert "cannot be stopped" in panel.note.text() and "waits" in panel.note.text()

        # a finished job gives the checkpoint its thumbnail
        image = tmp_path / "out" / "made.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), "red").save(image)
        job = Job(GenerationRequest(model=str(files["checkpoint"])), paths=[image])
        session.result_ready.emit(job)
        assert not panel.item_for(files["checkpoint"]).icon(0).isNull()

        # search by name
        panel.search.setText("LORA")
        assert panel.rows("lora") and not panel.rows("checkpoint") and not panel.rows("vae")
        panel.search.clear()

        # removing a folder rescans without it
        before = library.scans
        library.remove_folder(str(root / "models" / "Lora"))
        wait_scanned(qtbot, library, before + 1)
        assert panel.rows("lora") == [] and panel.rows("checkpoint")
    finally:
        session.shutdown()

    # a restart (a new session on the same config folder) finds the folders and, from the cache,
    # the same listing, hashes included, without hashing again
    session2, library2, panel2 = open_panel(qtbot, tmp_path / "config")
    try:
        assert library2.folders == [str(f) for f in found if f.name != "Lora"]
        assert panel2.folder_list.count() == 4
        library2.rescan()
        wait_scanned(qtbot, library2)
        assert panel2.rows("checkpoint")[0][-1] == short
        assert panel2.rows("checkpoint")[0][0] == IN_USE + "tiny-sd1"  # the model was kept
        assert panel2.item_for(files["checkpoint"]).icon(0).isNull() is False
    finally:
        session2.shutdown()


def test_no_folders_says_what_to_do(qtbot, tmp_path: Path) -> None:
    session, library, panel = open_panel(qtbot, tmp_path / "config")
    try:
        library.rescan()
        assert panel.tree.topLevelItemCount() == 0
        assert "A1111 / ComfyUI" in panel.status.text()
        assert library.use_install(tmp_path) == []
        assert "No A1111 or ComfyUI model folders" in panel.status.text()
        assert session.settings.model_folders == []
    finally:
        session.shutdown()


def test_the_window_has_the_library_dock_behind_a_view_menu_toggle(qtbot, make_window) -> None:
    from studio.paths import DEMO_MODEL

    window = make_window(wait_loaded=False)
    panel = window.library
    dock = panel.parentWidget()
    assert not dock.isVisible()
    toggle = dock.toggleViewAction()
    menus = {a.text(): a.menu().actions() for a in window.menuBar().actions() if a.menu()}
    assert toggle in menus["&View"]
    toggle.trigger()
    assert dock.isVisible()
    # folders set elsewhere (the settings dialog) are scanned when the panel is shown again
    window.session.settings.model_folders = [str(DEMO_MODEL.parent)]
    toggle.trigger()
    toggle.trigger()
    wait_scanned(qtbot, panel.library)
    assert [r[0].removeprefix(IN_USE) for r in panel.rows("checkpoint")] == ["demo"]


def test_the_demo_model_in_the_shipped_folder_is_marked_in_use(qtbot, tmp_path: Path) -> None:
    from studio.paths import DEMO_CONTROLNETS, DEMO_MODEL

    session, library, panel = open_panel(qtbot, tmp_path / "config")
    try:
        assert session.state.model == "demo"
        library.add_folder(DEMO_MODEL.parent)
        wait_scanned(qtbot, library)
        assert panel.rows("checkpoint")[0][:4] == (IN_USE + "demo", "small SD-shaped", "v", "128px")
        assert panel.rows("checkpoint")[0][-1] == ""  # a diffusers folder has no A1111 hash
        names = sorted(r[0] for r in panel.rows("controlnet"))
        assert names == sorted(p.name for p in DEMO_CONTROLNETS.iterdir() if p.is_dir())
    finally:
        session.shutdown()


def test_checkpoints_are_hashed_one_per_background_task(
    qtbot, tmp_path: Path, install, monkeypatch
) -> None:
    import shutil

    from studio.engine import library as engine_library

    _, files = install
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(files["checkpoint"], folder / f"{name}.safetensors")
    calls: list[int] = []
    real = engine_library.add_hashes
    monkeypatch.setattr(
        engine_library,
        "add_hashes",
        lambda entries, *a: calls.append(len(entries)) or real(entries, *a),
    )
    session, library, panel = open_panel(qtbot, tmp_path / "config")
    try:
        library.add_folder(folder)
        wait_scanned(qtbot, library)
        assert calls == [1, 1, 1]  # other background work (a dropped image) waits one file at most
        short = hashlib.sha256(files["checkpoint"].read_bytes()).hexdigest()[:10]
        assert [r[-1] for r in panel.rows("checkpoint")] == [short] * 3
    finally:
        session.shutdown()


def test_choosing_a_lora_embedding_or_vae_puts_it_in_the_settings_and_again_takes_it_out(
    qtbot, tmp_path: Path, install
) -> None:
    root, files = install
    session, library, panel = open_panel(qtbot, tmp_path / "config")
    try:
        library.use_install(root)
        wait_scanned(qtbot, library)
        state = session.state
        state.prompt = "a red circle"
        by_name = {e.name: e for e in library.entries}
        lora, embedding, vae = by_name["tiny-lora"], by_name["tiny-emb"], by_name["tiny-vae"]

        panel.tree.setCurrentItem(panel.item_for(lora.path))
        assert panel.load_button.text() == "Add to prompt" and panel.load_button.isEnabled()
        panel.load_button.click()
        assert state.prompt == "a red circle <lora:tiny-lora:1>"
        assert IN_USE in panel.rows("lora")[0][0]
        assert panel.load_button.text() == "Remove from prompt"
        assert library.choose(lora) and state.prompt == "a red circle"

        assert library.choose(embedding) and state.prompt == "a red circle, tiny-emb"
        assert library.choose(embedding) and state.prompt == "a red circle"

        assert library.choose(vae) and state.vae == vae.path
        assert session.state.request(seed=1).vae == vae.path  # jobs decode with it
        assert library.choose(vae) and state.vae == ""
    finally:
        session.shutdown()


def test_an_lcm_lora_switches_fast_mode_on_and_back(qtbot, tmp_path: Path, install) -> None:
    import shutil

    root, files = install
    lcm = root / "models" / "Lora" / "lcm-lora-sdv1-5.safetensors"
    shutil.copy(files["lora"], lcm)
    session, library, panel = open_panel(qtbot, tmp_path / "config")
    try:
        library.use_install(root)
        wait_scanned(qtbot, library)
        state = session.state
        state.prompt, state.sampler, state.steps, state.cfg_scale = "a cat", "Euler a", 30, 7.0
        entry = next(e for e in library.entries if e.name == "lcm-lora-sdv1-5")
        assert library.choose(entry)
        assert (state.sampler, state.steps, state.cfg_scale) == ("LCM", 4, 1.5)
        assert "<lora:lcm-lora-sdv1-5:1>" in state.prompt
        assert library.choose(entry)
        assert (state.prompt, state.sampler, state.steps, state.cfg_scale) == (
            "a cat",
            "Euler a",
            30,
            7.0,
        )
    finally:
        session.shutdown()
        lcm.unlink()
