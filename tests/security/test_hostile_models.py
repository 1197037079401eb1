"""Hostile and careless model files: refused with one message, never unpickled, nothing written.

Every case goes through the engine (`resolve_model` / `PipelineCache.load`) and through the CLI
(`studio generate -m ...`: exit code 1 and one line on stderr), and checks that the payload never
ran, that no output folder appeared and that a model already loaded stays in use.
"""

from __future__ import annotations

import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from studio.cli import main
from studio.engine import pipelines
from studio.engine.generate import generate
from studio.engine.models import resolve_model
from studio.engine.pipelines import PipelineCache
from studio.engine.request import GenerationRequest
from tests.ldm_layout import write_tiny_single_file

PICKLE_MESSAGE = "is a pickle checkpoint, which can run arbitrary code when loaded"


class Payload:
    """Unpickling this creates `marker`: the proof that a file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "elsewhere" / "PWNED"


@pytest.fixture
def evil_pickle(marker) -> bytes:
    marker.parent.mkdir()
    data = pickle.dumps(Payload(marker))
    # the payload is live: loading it really would have run code
    probe = marker.with_name("probe")
    pickle.loads(pickle.dumps(Payload(probe)))
    assert probe.read_text() == "pwned"
    probe.unlink()
    return data


def cli_refuses(model: Path | str, out: Path, capsys) -> str:
    """`studio generate -m model` fails with exit code 1 and one stderr line; that line."""
    capsys.readouterr()
    code = main(["generate", "-m", str(model), "-p", "x", "--steps", "1", "--outdir", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.endswith("\n")
    assert "Traceback" not in captured.err and captured.err.startswith("studio: ")
    # nothing written: the destination check may have created the folder, but it is empty
    assert not out.exists() or list(out.rglob("*")) == []
    return captured.err.removeprefix("studio: ").rstrip("\n")


def tiny_request(model: Path | str, **kw) -> GenerationRequest:
    return GenerationRequest(model=str(model), prompt="x", width=64, height=64, steps=2, **kw)


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """The refs whose weights PipelineCache really loads."""
    seen: list[str] = []
    real = pipelines._load_base

    def counting(info, dtype):
        seen.append(info.ref)
        return real(info, dtype)

    monkeypatch.setattr(pipelines, "_load_base", counting)
    return seen


# ---- pickles --------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin", ".pkl", ".CKPT"])
def test_pickle_checkpoints_are_refused_unopened(tmp_path, marker, evil_pickle, capsys, suffix):
    bad = tmp_path / f"model{suffix}"
    bad.write_bytes(evil_pickle)
    with pytest.raises(ValueError, match=PICKLE_MESSAGE):
        resolve_model(str(bad))
    with pytest.raises(ValueError, match=PICKLE_MESSAGE):
        PipelineCache("cpu").load(str(bad))
    line = cli_refuses(bad, tmp_path / "out", capsys)
    assert line.startswith(f"model{suffix} {PICKLE_MESSAGE}. Convert it to .safetensors")
    assert not marker.exists()
    assert bad.read_bytes() == evil_pickle


@pytest.mark.parametrize("kind", ["plain pickle", "torch.save zip"])
def test_a_pickle_renamed_to_safetensors_is_not_unpickled(
    tmp_path, marker, evil_pickle, capsys, kind
):
    bad = tmp_path / "model.safetensors"
    if kind == "plain pickle":
        bad.write_bytes(evil_pickle)
    else:
        torch.save({"state_dict": Payload(marker)}, bad)  # what a real .ckpt looks like
    data = bad.read_bytes()
    with pytest.raises(ValueError, match=r"model.safetensors is not a valid .safetensors file \("):
        resolve_model(str(bad))
    with pytest.raises(ValueError, match="not a valid .safetensors file"):
        PipelineCache("cpu").load(str(bad))
    line = cli_refuses(bad, tmp_path / "out", capsys)
    assert line.startswith("model.safetensors is not a valid .safetensors file (")
    assert not marker.exists()
    assert bad.read_bytes() == data


@pytest.mark.parametrize(
    ("component", "weights"),
    [
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "pytorch_model"),
    ],
)
def test_a_pickle_bin_in_a_diffusers_folder_is_not_unpickled(
    tiny_model, tmp_path, marker, evil_pickle, capsys, component, weights
):
    folder = tmp_path / "evil"
    shutil.copytree(tiny_model, folder)
    for f in (folder / component).glob("*.safetensors"):
        f.unlink()  # no safetensors beside it: the loader must fail, not fall back to pickle
    (folder / component / f"{weights}.bin").write_bytes(evil_pickle)
    with pytest.raises(ValueError, match="Could not load model 'evil'"):
        PipelineCache("cpu").load(str(folder))
    with pytest.raises(ValueError, match="Could not load model 'evil'"):
        generate(tiny_request(folder), PipelineCache("cpu"))
    assert cli_refuses(folder, tmp_path / "out", capsys).startswith("Could not load model 'evil':")
    assert not marker.exists()


def test_a_pickle_bin_beside_safetensors_is_ignored(
    tiny_model, tmp_path, marker, evil_pickle, capsys
):
    folder = tmp_path / "both"
    shutil.copytree(tiny_model, folder)
    for component, weights in [
        ("unet", "diffusion_pytorch_model"),
        ("text_encoder", "pytorch_model"),
    ]:
        (folder / component / f"{weights}.bin").write_bytes(evil_pickle)
    result = generate(tiny_request(folder), PipelineCache("cpu"))
    assert len(result.images) == 1
    out = tmp_path / "out"
    code = main(
        ["generate", "-m", str(folder), "-p", "x", "--steps", "1", "--outdir", str(out), "-q"]
    )
    assert code == 0
    assert len(list(out.rglob("*.png"))) == 1
    assert not marker.exists()


# ---- broken safetensors -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_tiny_single_file("sd1", tmp_path_factory.mktemp("sd1-file")).path


def _header_length(path: Path) -> int:
    with path.open("rb") as f:
        return struct.unpack("<Q", f.read(8))[0]


def _truncated_in_header(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes()[: 8 + _header_length(source) // 2])


def _huge_header(_source: Path, target: Path) -> None:
    target.write_bytes(struct.pack("<Q", 2**60) + b'{"a": {"dtype": "F32", "shape": [1]}}')


def _header_not_json(_source: Path, target: Path) -> None:
    garbage = b"<html>not json</html>"
    target.write_bytes(struct.pack("<Q", len(garbage)) + garbage + b"\0" * 64)


def _header_not_utf8(_source: Path, target: Path) -> None:
    target.write_bytes(struct.pack("<Q", 6) + b'{"\xff\xfe":' + b"\0" * 64)


def _empty(_source: Path, target: Path) -> None:
    target.write_bytes(b"")


def _shorter_than_its_length(_source: Path, target: Path) -> None:
    target.write_bytes(b"\x10\x00\x00")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_truncated_in_header, "its header claims"),
        (_huge_header, "its header claims 1,152,921,504,606,846,976 bytes, more than it holds"),
        (_header_not_json, "Expecting value"),
        (_header_not_utf8, ""),
        (_empty, "the file is too short to be a .safetensors file"),
        (_shorter_than_its_length, "the file is too short to be a .safetensors file"),
    ],
    ids=["truncated-header", "huge-header", "not-json", "not-utf8", "empty", "3-bytes"],
)
def test_broken_safetensors_headers_are_refused_with_the_reason(
    tiny_checkpoint, tmp_path, capsys, make, reason
):
    bad = tmp_path / "broken.safetensors"
    make(tiny_checkpoint, bad)
    data = bad.read_bytes()
    expected = f"broken.safetensors is not a valid .safetensors file ({reason}"
    with pytest.raises(ValueError) as e:
        resolve_model(str(bad))
    assert str(e.value).startswith(expected)
    assert cli_refuses(bad, tmp_path / "out", capsys).startswith(expected)
    assert bad.read_bytes() == data


def test_a_checkpoint_truncated_in_its_weights_fails_to_load_and_the_cache_recovers(
    tiny_model, tiny_checkpoint, tmp_path, capsys, loads
):
    cut = tmp_path / "cut.safetensors"
    full = tiny_checkpoint.read_bytes()
    body = len(full) - 8 - _header_length(tiny_checkpoint)
    cut.write_bytes(full[: len(full) - body // 2])  # a sound header, half the weights
    assert resolve_model(str(cut)).family == "sd1"  # the header alone cannot tell
    cache = PipelineCache("cpu")
    cache.load(str(tiny_model))
    with pytest.raises(ValueError, match="^Could not load model 'cut': "):
        cache.load(str(cut))
    # the failed load freed the old model first (memory), but nothing is half-loaded: the next
    # job loads its model again and runs
    assert cache.info is None
    result = generate(tiny_request(tiny_model), cache)
    assert len(result.images) == 1 and cache.info.ref == str(tiny_model)
    assert loads == [str(tiny_model), str(cut), str(tiny_model)]
    assert cli_refuses(cut, tmp_path / "out", capsys).startswith("Could not load model 'cut': ")


# ---- the wrong kind of file ------------------------------------------------------------------
OTHER_FILES = {
    "lora": (
        {
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 32),
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": (32, 4),
            "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": (),
        },
        "is a LoRA, not a Stable Diffusion checkpoint. Put it in your LoRA folder",
    ),
    "vae": (
        {
            "encoder.conv_in.weight": (8, 3, 3, 3),
            "quant_conv.weight": (8, 8, 1, 1),
            "post_quant_conv.weight": (4, 4, 1, 1),
            "decoder.conv_out.weight": (3, 8, 3, 3),
        },
        "is a VAE, not a Stable Diffusion checkpoint. Load it as a VAE override",
    ),
    "embedding": (
        {"emb_params": (2, 32)},
        "is a textual-inversion embedding, not a Stable Diffusion checkpoint.",
    ),
    "controlnet": (
        {"control_model.input_hint_block.0.weight": (16, 3, 3, 3)},
        "is a ControlNet, not a Stable Diffusion checkpoint. Choose it in the ControlNet panel",
    ),
}


@pytest.mark.parametrize("kind", list(OTHER_FILES))
def test_a_lora_or_vae_passed_as_the_model_is_named_and_the_loaded_model_stays(
    tiny_model, tmp_path, capsys, loads, kind
):
    shapes, message = OTHER_FILES[kind]
    path = tmp_path / f"{kind}.safetensors"
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, path)
    with pytest.raises(ValueError, match=f"^{kind}.safetensors {message}"):
        resolve_model(str(path))
    cache = PipelineCache("cpu")
    loaded = cache.load(str(tiny_model))
    with pytest.raises(ValueError, match=f"^{kind}.safetensors {message}"):
        cache.load(str(path))
    with pytest.raises(ValueError, match=f"^{kind}.safetensors {message}"):
        generate(tiny_request(path), cache)
    # the model that was loaded is still the one in use, not loaded again
    assert cache.info is loaded
    assert len(generate(tiny_request(tiny_model), cache).images) == 1
    assert loads == [str(tiny_model)]
    assert cli_refuses(path, tmp_path / "out", capsys).startswith(f"{kind}.safetensors {message}")


@pytest.mark.parametrize("component", ["vae", "unet", "text_encoder"])
def test_a_component_folder_passed_as_the_model_is_refused(
    tiny_model, tmp_path, capsys, loads, component
):
    folder = tiny_model / component
    message = f"{folder} is not a diffusers model folder (no model_index.json)."
    with pytest.raises(ValueError) as e:
        resolve_model(str(folder))
    assert str(e.value).startswith(message)
    cache = PipelineCache("cpu")
    loaded = cache.load(str(tiny_model))
    with pytest.raises(ValueError):
        cache.load(str(folder))
    assert cache.info is loaded and loads == [str(tiny_model)]
    assert cli_refuses(folder, tmp_path / "out", capsys).startswith(message)


def test_the_demo_model_stays_loaded_after_a_refused_file(tmp_path, evil_pickle, marker, loads):
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(evil_pickle)
    cache = PipelineCache("cpu")
    demo = cache.load("demo")
    with pytest.raises(ValueError, match=PICKLE_MESSAGE):
        cache.load(str(bad))
    assert cache.info is demo and cache.load("demo") is demo
    assert loads == ["demo"]
    assert not marker.exists()
