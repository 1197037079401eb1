"""Single-file checkpoints load fully offline through the app's own load path.

Tiny SD 1.x, SD 1.x inpainting, SD 2.x and SDXL models are written in the original layout
(tests/ldm_layout.py, with what real files carry: EMA copies, DDPM buffers, position ids, fp16)
with their tiny configs beside them as `<file>.config/`. A subprocess with HF_HUB_OFFLINE=1, an
empty hub cache and every socket blocked loads each through PipelineCache and generates; the
pixels must equal those of the same model loaded from its diffusers folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.ldm_layout import write_tiny_single_file

SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    from pathlib import Path
    attempts = []

    def blocked(*args, **kwargs):
        attempts.append(repr(args[1:] or args))
        raise OSError("network blocked by the test")

    socket.socket.connect = blocked
    socket.socket.connect_ex = blocked
    socket.create_connection = blocked
    socket.getaddrinfo = blocked

    import numpy as np
    import torch
    from PIL import Image
    from studio.engine.generate import generate
    from studio.engine.pipelines import PipelineCache
    from studio.engine.request import GenerationRequest

    torch.set_num_threads(1)
    cases = json.loads(sys.argv[1])
    report = {}
    for name, case in cases.items():
        request = GenerationRequest(
            prompt="a red cube", negative_prompt="blue", steps=2, sampler="Euler", seed=3,
            width=64, height=64, cfg_scale=5.0,
        )
        if case["inpaint"]:
            mask = Image.new("L", (64, 64), 0)
            mask.paste(255, (16, 16, 48, 48))
            request = request.with_(
                mode="inpaint", init_image=Image.new("RGB", (64, 64), (200, 40, 40)), mask=mask
            )
        images = {}
        for kind in ("single_file", "diffusers"):
            if kind == "diffusers":  # an SD 2.x file's prediction type is probed: the same here
                config = Path(case[kind]) / "scheduler" / "scheduler_config.json"
                values = json.loads(config.read_text())
                config.write_text(json.dumps({**values, "prediction_type": prediction}))
            cache = PipelineCache("cpu")
            info = cache.load(case[kind])
            if kind == "single_file":
                report[name] = {
                    "family": info.family,
                    "kind": info.kind,
                    "prediction": cache.scheduler_config["prediction_type"],
                }
                prediction = report[name]["prediction"]
            result = generate(request.with_(model=case[kind]), cache)
            images[kind] = np.asarray(result.images[0])
        diff = np.abs(images["single_file"].astype(int) - images["diffusers"].astype(int))
        report[name]["max_diff"] = int(diff.max())
    report["attempts"] = attempts
    print("REPORT " + json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("single-files")
    cases = {}
    for family, fp16 in (
        ("sd1", False),
        ("sd1", True),
        ("sd1-inpaint", False),
        ("sd2", False),
        ("sdxl", False),
    ):
        name = f"{family}-fp16" if fp16 else family
        tiny = write_tiny_single_file(family, root / name, fp16=fp16)
        # the tiny architecture's configs beside the file, where the loader looks first
        shutil.copytree(tiny.config, tiny.path.with_name(tiny.path.name + ".config"))
        cases[name] = {
            "single_file": str(tiny.path),
            "diffusers": str(tiny.diffusers),
            "inpaint": family == "sd1-inpaint",
        }
    return cases


def test_tiny_single_files_load_offline_and_match_their_diffusers_folders(tiny_files, tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "empty-hf-home"),
        "HF_HUB_CACHE": str(tmp_path / "empty-hf-home" / "hub"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(tiny_files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.split("REPORT ", 1)[1])
    assert report.pop("attempts") == []  # not one connection was tried
    families = {name: r["family"] for name, r in report.items()}
    assert families == {
        "sd1": "sd1",
        "sd1-fp16": "sd1",
        "sd1-inpaint": "sd1",
        "sd2": "sd2",
        "sdxl": "sdxl",
    }
    assert all(r["kind"] == "single_file" for r in report.values())
    # the same weights (tests/engine/test_ldm_layout.py checks them bit for bit); tensors that
    # sit at other memory alignments may round differently in the last float bit, so a pixel
    # may move by one level. The fp16 file's weights are the fp32 model rounded.
    diffs = {name: r["max_diff"] for name, r in report.items()}
    assert all(d <= 1 for name, d in diffs.items() if name != "sd1-fp16"), diffs
    assert diffs["sd1-fp16"] <= 8, diffs
    assert report["sd1"]["prediction"] == "epsilon"


def test_the_sd2_probe_tells_v_prediction_from_epsilon() -> None:
    import torch

    from studio.engine.single_file import probe_prediction_type

    class FakeUNet(torch.nn.Module):
        """Answers the probe like a v- or an epsilon-model: v pulls the output far below x."""

        def __init__(self, offset: float) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.offset = offset
            self.config = type("C", (), {"in_channels": 4, "cross_attention_dim": 1024})()

        def forward(self, x, t, context):
            assert int(t) == 999 and context.shape == (1, 2, 1024)
            return type("Out", (), {"sample": x + self.offset + self.w})()

    assert probe_prediction_type(FakeUNet(-1.5)) == "v_prediction"
    assert probe_prediction_type(FakeUNet(-0.2)) == "epsilon"
    assert np.isclose(float(FakeUNet(0).w), 0.0)
