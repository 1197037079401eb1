from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from studio.demo import train


@pytest.fixture(autouse=True)
def _few_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = ["--threads", "1", "--vae-batch", "1", "--vae-crop", "32", "--decoder-crop", "32",
        "--scenes", "6", "--unet-batch", "2", "--warm-steps", "1"]  # fmt: skip


def test_training_runs_every_stage_and_exports_a_loadable_pipeline(tmp_path: Path):
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "model"
    train.main(["--run", str(tmp_path / "run"), "--out", str(out), "--vae-steps", "1",
                "--decoder-steps", "1", "--unet-steps", "1", *TINY])  # fmt: skip
    pipe = StableDiffusionPipeline.from_pretrained(str(out), local_files_only=True)
    assert pipe.safety_checker is None
    assert pipe.unet.dtype == torch.float32  # stored as fp16, loaded as fp32
    assert pipe.vae.config.scaling_factor != 0.18215  # measured from the latents
    image = pipe("a red circle", num_inference_steps=2, output_type="np").images[0]
    assert image.shape == (128, 128, 3)


def test_resumed_training_matches_an_uninterrupted_run(tmp_path: Path):
    from safetensors.torch import load_file

    straight, resumed = tmp_path / "a", tmp_path / "b"
    args = ["--stages", "vae", *TINY]
    train.main(["--run", str(straight), "--vae-steps", "2", *args])
    train.main(["--run", str(resumed), "--vae-steps", "1", *args])
    train.main(["--run", str(resumed), "--vae-steps", "2", *args])
    a = load_file(str(straight / "vae.safetensors"))
    b = load_file(str(resumed / "vae.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_unet_resumed_across_the_recipe_switches_matches_an_uninterrupted_run(
    tmp_path: Path,
):
    from safetensors.torch import load_file

    data = ["--stages", "vae,latents", "--vae-steps", "1", *TINY]
    unet = ["--stages", "unet", "--min-snr-steps", "1", "--layout-focus-from", "1",
            "--long-ema-from", "1", *TINY]  # fmt: skip
    straight, resumed = tmp_path / "a", tmp_path / "b"
    for run in (straight, resumed):
        train.main(["--run", str(run), *data])
    train.main(["--run", str(straight), "--unet-steps", "2", *unet])
    train.main(["--run", str(resumed), "--unet-steps", "1", *unet])
    train.main(["--run", str(resumed), "--unet-steps", "2", *unet])
    a = load_file(str(straight / "unet_ema.safetensors"))
    b = load_file(str(resumed / "unet_ema.safetensors"))
    for k in a:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_min_snr_weight_starves_high_noise_steps_and_the_plain_loss_does_not():
    snr = torch.tensor([0.01, 1.0, 100.0])
    min_snr = train.loss_weight(snr, "v_prediction", min_snr=True)
    plain = train.loss_weight(snr, "v_prediction", min_snr=False)
    assert min_snr[0] < 0.02 and min_snr[1] == pytest.approx(0.5)
    assert torch.equal(plain, torch.ones(3))
    eps = train.loss_weight(snr, "epsilon", min_snr=True)
    assert eps[0] == pytest.approx(1.0) and eps[2] == pytest.approx(0.05)


def test_layout_focus_draws_half_the_batch_from_the_noisier_half():
    g = torch.Generator().manual_seed(0)
    plain = train.draw_timesteps(4000, 1000, g, layout_focus=False)
    focus = train.draw_timesteps(4000, 1000, g, layout_focus=True)
    assert 0.45 < (plain >= 500).float().mean() < 0.55
    assert 0.70 < (focus >= 500).float().mean() < 0.80
    assert focus.min() >= 0 and focus.max() < 1000


def test_unknown_stage_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SystemExit, match="Unknown stage"):
        train.main(["--run", str(tmp_path), "--stages", "vae,dance"])
