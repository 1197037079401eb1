from __future__ import annotations

import numpy as np
from PIL import Image

from studio.cli import main
from studio.engine.metadata import read_settings


def test_generate_writes_an_image_with_its_settings(tiny_model, tmp_path, capsys):
    code = main(
        [
            "generate",
            "-m",
            str(tiny_model),
            "-p",
            "a red circle, left: big",
            "-n",
            "blue",
            "--steps",
            "3",
            "--seed",
            "11",
            "--sampler",
            "Euler a",
            "--outdir",
            str(tmp_path),
            "-q",
        ]
    )
    assert code == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert path.startswith(str(tmp_path))
    found = read_settings(path)
    assert found.request.prompt == "a red circle, left: big"
    assert (found.request.seed, found.request.sampler, found.request.steps) == (11, "Euler a", 3)
    assert Image.open(path).size == (64, 64)  # the model's native size when none is given


def _generate_x(model, out) -> int:
    return main(["generate", "-m", str(model), "-p", "x", "--steps", "3", "--seed", "5",
                 "-o", str(out), "-q"])  # fmt: skip


def test_regenerate_gives_identical_pixels(tiny_model, tmp_path, capsys):
    first = tmp_path / "first.webp"
    assert _generate_x(tiny_model, first) == 0
    # webp is lossy: regenerate into a png and compare with a fresh png of the same request
    again = tmp_path / "again.png"
    assert main(["regenerate", str(first), "-o", str(again), "-q"]) == 0
    direct = tmp_path / "direct.png"
    assert _generate_x(tiny_model, direct) == 0
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(direct)))


def test_info_prints_settings_or_fails_clearly(tiny_model, tmp_path, capsys):
    out = tmp_path / "a.png"
    main(
        [
            "generate",
            "-m",
            str(tiny_model),
            "-p",
            "a star",
            "--steps",
            "2",
            "--seed",
            "4",
            "-o",
            str(out),
            "-q",
        ]
    )
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "a star" in text and "seed:            4" in text
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert main(["info", str(plain)]) == 1
    assert "holds no generation settings" in capsys.readouterr().err


def test_invalid_options_give_a_message_not_a_traceback(tiny_model, tmp_path, capsys):
    code = main(["generate", "-m", str(tiny_model), "--width", "100", "--outdir", str(tmp_path)])
    assert code == 1
    assert "multiple of 8" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_samplers_lists_the_names_users_know(capsys):
    assert main(["samplers"]) == 0
    out = capsys.readouterr().out
    for name in ("Euler a", "DPM++ 2M Karras", "DPM++ SDE Karras", "UniPC", "LCM"):
        assert name in out


def test_an_eps_init_image_is_refused_in_one_line(tiny_model, tmp_path, capsys, monkeypatch):
    from PIL import EpsImagePlugin

    opened = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(self))
    evil = tmp_path / "evil.jpg"
    evil.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n")
    out = tmp_path / "out"
    code = main(["generate", "-m", str(tiny_model), "--init-image", str(evil),
                 "--outdir", str(out), "-q"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("studio: evil.jpg is not an image in a format the app opens")
    assert opened == [] and not out.exists()


def test_a_16_bit_init_image_is_not_white(tmp_path):
    from studio.cli import _open_image

    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(path)
    assert _open_image(path, "RGB").getpixel((0, 0)) == (156, 156, 156)
    assert _open_image(path, "L").getpixel((0, 0)) == 156


BIG_SEED = 5_000_000_000  # beyond 32 bits: the CLI and the metadata keep all of it


def test_a_64_bit_seed_travels_through_cli_metadata_and_regenerate(tiny_model, tmp_path, capsys):
    from studio.engine.generate import generate
    from studio.engine.pipelines import PipelineCache
    from studio.engine.request import GenerationRequest

    out = tmp_path / "big.png"
    args = ["generate", "-m", str(tiny_model), "-p", "x", "--steps", "3", "-q"]
    assert main([*args, "--seed", str(BIG_SEED), "-o", str(out)]) == 0
    assert read_settings(out).request.seed == BIG_SEED
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert f"seed:            {BIG_SEED}\n" in capsys.readouterr().out

    request = GenerationRequest(model=str(tiny_model), prompt="x", steps=3, seed=BIG_SEED,
                                width=64, height=64)  # fmt: skip
    cache = PipelineCache()
    direct = np.asarray(generate(request, cache).images[0])
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), direct)
    again = tmp_path / "again.png"
    assert main(["regenerate", str(out), "-o", str(again), "-q"]) == 0
    assert np.array_equal(np.asarray(Image.open(again).convert("RGB")), direct)
    assert read_settings(again).request.seed == BIG_SEED


def test_a_seed_past_int64_is_refused_in_one_line(tiny_model, tmp_path, capsys):
    code = main(
        ["generate", "-m", str(tiny_model), "--seed", str(2**63), "--outdir", str(tmp_path)]
    )
    assert code == 1  # like every invalid option
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"Seed must be between 0 and {2**63 - 1}" in err
    assert list(tmp_path.iterdir()) == []


def test_batch_count_saves_every_image_with_continuing_seeds(tiny_model, tmp_path, capsys):
    args = ["generate", "-m", str(tiny_model), "-p", "x", "--steps", "2", "-q"]
    first = 2**32 - 1
    code = main([*args, "--seed", str(first), "--batch-size", "2", "--batch-count", "2",
                 "--outdir", str(tmp_path)])  # fmt: skip
    assert code == 0
    paths = capsys.readouterr().out.split()
    seeds = [read_settings(p).image_seed for p in paths]
    assert seeds == [first, first + 1, first + 2, first + 3]  # no wrap at 2**32
    assert main([*args, "--batch-count", "2", "-o", str(tmp_path / "one.png")]) == 1
    assert "--out names one file" in capsys.readouterr().err
    code = main([*args, "--seed", str(2**63 - 1), "--batch-count", "2", "--outdir", str(tmp_path)])
    assert code == 1 and "largest seed" in capsys.readouterr().err


def test_models_lists_every_kind_as_a_table_or_json(tmp_path, capsys):
    import json

    from studio.cli import main
    from tests.engine.test_library import write_library

    write_library(tmp_path / "models")
    assert main(["models", str(tmp_path / "models")]) == 0
    table = capsys.readouterr().out
    assert "tiny-lora" in table and "tiny-sd1" in table
    assert main(["models", "--json", str(tmp_path / "models")]) == 0
    kinds = {e["name"]: e["kind"] for e in json.loads(capsys.readouterr().out)}
    assert kinds["tiny-lora"] == "lora" and kinds["tiny-sd1"] == "checkpoint"
    assert main(["models", str(tmp_path / "nowhere")]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_out_of_memory_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    from studio.cli import main
    from studio.engine import generate as generate_module

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(generate_module, "generate", out_of_memory)
    code = main(["generate", "-p", "x", "--steps", "2", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "memory" in err.lower()
    assert "Traceback" not in err and not (tmp_path / "x.png").exists()
