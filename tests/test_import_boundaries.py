"""The engine runs headless: no Qt in it, and `import studio` must stay light."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_studio_imports_no_torch():
    assert "torch" not in _modules_after("import studio, studio.cli")


def test_engine_imports_no_qt():
    modules = _modules_after(
        "import studio.engine.generate, studio.engine.pipelines, studio.engine.metadata, "
        "studio.engine.output, studio.engine.masks, studio.engine.control, studio.cli"
    )
    assert not {m for m in modules if m.startswith(("PySide6", "studio.ui"))}


def test_request_checks_seeds_and_batches_import_no_torch():
    # the GUI checks a request on click and the CLI before the model loads: neither waits for torch
    modules = _modules_after(
        "import studio.engine.checks, studio.engine.batch, studio.engine.seeds"
    )
    assert not modules & {"torch", "diffusers", "transformers", "cv2"}
