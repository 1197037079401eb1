"""Train a demo ControlNet (edges, depth or pose) for the demo model on the world's own maps.

    python -m studio.demo.train_controlnet --kind canny --run cn_run/canny --steps 900

The ControlNet starts as a copy of the demo UNet's encoder (ControlNetModel.from_unet, zero
convolutions); the UNet, VAE and text encoder stay frozen. Scene latents and control maps are
computed once into the run folder. Batches, noise and captions are drawn from generators seeded by
(seed, step), so a resumed run gives the same weights as an uninterrupted one. Running again with a
new --base and a larger --steps fine-tunes the same ControlNet on that base.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from studio.demo import models, world
from studio.demo.train import TRAIN_SEED_BASE, _step_seed, load_checkpoint, save_checkpoint

KINDS = ("canny", "depth", "pose")
# Three stride-2 convolutions take a 128 px map to the 16x16 latent; narrow to keep it small.
CONDITIONING_CHANNELS = (16, 32, 64, 128)
GUIDANCE_FREE = 0.15  # caption dropout, as the demo model was trained


# ---------------------------------------------------------------- control maps


def control_map(scene: world.Scene, kind: str) -> np.ndarray:
    """The H x W x 3 uint8 control map of a scene, as a user would feed it."""
    r = scene.rendering
    if kind == "canny":
        from studio.engine.control import preprocess

        # the app's own Canny preprocessor on the rendered picture: what users feed
        edges = preprocess(scene.image, "canny", (r.image.shape[1], r.image.shape[0]))
        return np.asarray(edges).copy()
    if kind == "depth":
        return np.repeat(r.depth[:, :, None], 3, axis=2)
    if kind == "pose":
        return r.pose.copy()
    raise ValueError(f"Unknown ControlNet kind {kind!r}; choose one of {', '.join(KINDS)}.")


def has_figure(layout: world.Layout) -> bool:
    return any(o.kind == world.FIGURE for o in layout.objects)


def scene_seeds(kind: str, n: int, base: int = TRAIN_SEED_BASE) -> list[int]:
    """n scene seeds from `base` on; pose keeps only scenes with a stick figure."""
    if kind not in KINDS:
        raise ValueError(f"Unknown ControlNet kind {kind!r}; choose one of {', '.join(KINDS)}.")
    seeds: list[int] = []
    seed = base
    while len(seeds) < n:
        if kind != "pose" or has_figure(world.sample_layout(random.Random(seed))):
            seeds.append(seed)
        seed += 1
    return seeds


# ---------------------------------------------------------------- the frozen base


def _torch():
    import torch

    return torch


def load_base(base: Path | None, run: Path, seed: int) -> dict[str, Any]:
    """unet, vae, text encoder and tokenizer of the demo model (random ones when base is None)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    from studio.demo.tokenizer import build_tokenizer_files, load_tokenizer

    torch = _torch()
    if base is None:  # smoke tests only: the demo model's shapes with random weights
        torch.manual_seed(seed)
        tok = load_tokenizer(build_tokenizer_files(run / "tokenizer"))
        parts = {
            "unet": models.build_unet(),
            "vae": models.build_vae(),
            "text": models.build_text_encoder(len(tok), tok.bos_token_id, tok.eos_token_id),
        }
        key, prediction = "random", "epsilon"
    else:
        if not (base / "unet" / "config.json").is_file():
            raise ValueError(f"{base} is not a diffusers model folder (no unet/config.json).")
        tok = load_tokenizer(base / "tokenizer")
        kw = dict(local_files_only=True, use_safetensors=True)
        parts = {
            "unet": UNet2DConditionModel.from_pretrained(base / "unet", **kw),
            "vae": AutoencoderKL.from_pretrained(base / "vae", **kw),
            "text": CLIPTextModel.from_pretrained(base / "text_encoder", **kw),
        }
        key = _encoder_key(parts["vae"])
        sched = json.loads((base / "scheduler" / "scheduler_config.json").read_text())
        prediction = sched.get("prediction_type", "epsilon")
    for m in parts.values():
        m.float().eval().requires_grad_(False)
    if prediction not in ("epsilon", "v_prediction"):
        raise ValueError(f"Cannot train a ControlNet for a {prediction!r}-prediction model.")
    return {**parts, "tokenizer": tok, "vae_key": key, "prediction": prediction}


def _encoder_key(vae) -> str:
    # latents depend on the encoder and the scaling only: a fine-tuned decoder keeps the cache
    h = hashlib.sha256(str(vae.config.scaling_factor).encode())
    for name, v in vae.state_dict().items():
        if name.startswith(("encoder.", "quant_conv.")):
            h.update(name.encode())
            h.update(v.float().numpy().tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- data cache


def prepare_data(run: Path, kind: str, n: int, base: dict[str, Any], batch: int = 64):
    """(seeds, scaled latents N x 4 x 16 x 16, control maps N x C x 128 x 128 uint8), cached."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    torch = _torch()
    path = run / "data.safetensors"
    if path.exists():
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            if meta.get("vae") == base["vae_key"] and int(meta["n"]) >= n:
                return (
                    f.get_tensor("seeds")[:n].tolist(),
                    f.get_tensor("latents")[:n],
                    f.get_tensor("controls")[:n],
                )
    seeds = scene_seeds(kind, n)
    vae = base["vae"]
    latents, controls = [], []
    t0 = time.time()
    with torch.no_grad():
        for i in range(0, n, batch):
            scenes = [world.make_scene(s) for s in seeds[i : i + batch]]
            x = torch.from_numpy(np.stack([s.rendering.image for s in scenes]))
            x = x.permute(0, 3, 1, 2).float() / 127.5 - 1.0
            latents.append(vae.encode(x).latent_dist.mean * vae.config.scaling_factor)
            maps = np.stack([control_map(s, kind) for s in scenes])
            # edges and depth are grey: one channel is enough on disk
            maps = maps[..., :1] if kind != "pose" else maps
            controls.append(torch.from_numpy(maps).permute(0, 3, 1, 2).contiguous())
    data = {
        "seeds": torch.tensor(seeds, dtype=torch.int64),
        "latents": torch.cat(latents).contiguous(),
        "controls": torch.cat(controls).contiguous(),
    }
    save_file(data, str(path), metadata={"vae": base["vae_key"], "n": str(n), "kind": kind})
    _log(run, {"data": n, "kind": kind, "elapsed_s": round(time.time() - t0, 1)})
    return seeds, data["latents"], data["controls"]


def _log(run: Path, record: dict) -> None:
    print(json.dumps(record), flush=True)
    with open(run / "controlnet.log", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------- training


def build_controlnet(unet):
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=CONDITIONING_CHANNELS
    )
    if unet.config.addition_embed_type == "text":
        # from_unet leaves the pooled-text embedding random, and diffusers' from_config loses
        # its head count; the ControlNet reads the prompt through cross-attention anyway.
        controlnet.add_embedding = None
        controlnet.register_to_config(addition_embed_type=None)
    return controlnet


def train(
    run: Path,
    kind: str,
    base_dir: Path | None,
    steps: int,
    *,
    seed: int = 0,
    batch: int = 16,
    lr: float = 3e-4,
    scenes: int = 4096,
    ckpt_every: int = 50,
) -> Any:
    from diffusers import DDPMScheduler

    torch = _torch()
    if kind not in KINDS:
        raise ValueError(f"Unknown ControlNet kind {kind!r}; choose one of {', '.join(KINDS)}.")
    if steps < 0 or batch < 1 or scenes < 1:
        raise ValueError("Steps must be >= 0, batch and scenes >= 1.")
    run.mkdir(parents=True, exist_ok=True)
    base = load_base(base_dir, run, seed)
    unet, text, tok = base["unet"], base["text"], base["tokenizer"]
    seeds, latents, controls = prepare_data(run, kind, scenes, base)
    layouts = [world.sample_layout(random.Random(s)) for s in seeds]

    torch.manual_seed(seed)
    ckpt = run / "controlnet.safetensors"
    config_path = run / "controlnet_config.json"
    if ckpt.exists() and config_path.exists():
        from diffusers import ControlNetModel

        # resume with the architecture it was made with, even on a base that has changed since
        controlnet = ControlNetModel.from_config(json.loads(config_path.read_text()))
    else:
        controlnet = build_controlnet(unet)
        config_path.write_text(json.dumps(dict(controlnet.config), indent=1))
    opt = torch.optim.AdamW(controlnet.parameters(), lr=lr, weight_decay=0.0)
    step = load_checkpoint(ckpt, {"controlnet": controlnet}, opt) if ckpt.exists() else 0
    sched = DDPMScheduler(**models.TRAIN_SCHEDULE)
    T = sched.config.num_train_timesteps
    # The layout is decided at high noise, where an epsilon error barely reflects a wrong
    # shape: weight epsilon errors by 1/SNR (an x0 error) there, clamped to [1, 10]. Same
    # optimum, better signal. A v error is an epsilon error times (1 + 1/SNR): same objective.
    snr = sched.alphas_cumprod / (1 - sched.alphas_cumprod)
    weight = (1 / snr).clamp(1.0, 10.0)
    v_pred = base["prediction"] == "v_prediction"
    if v_pred:
        weight = weight * snr / (snr + 1)
    controlnet.train()
    _log(run, {"start": step, "steps": steps, "kind": kind, "base": str(base_dir),
               "prediction": base["prediction"],
               "params": sum(p.numel() for p in controlnet.parameters())})  # fmt: skip
    t0, last, last_step = time.time(), time.time(), step
    while step < steps:
        g = torch.Generator().manual_seed(_step_seed(seed, f"controlnet-{kind}", step))
        rng = random.Random(_step_seed(seed, f"controlnet-{kind}", step))
        idx = [rng.randrange(len(seeds)) for _ in range(batch)]
        caps = ["" if rng.random() < GUIDANCE_FREE else world.caption(layouts[i], rng) for i in idx]
        ids = tok(caps, padding="max_length", max_length=tok.model_max_length,
                  truncation=True, return_tensors="pt").input_ids  # fmt: skip
        x0 = latents[idx]
        cond_image = controls[idx].float().div(255).expand(-1, 3, -1, -1)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, T, (batch,), generator=g)
        xt = sched.add_noise(x0, noise, t)
        target = sched.get_velocity(x0, noise, t) if v_pred else noise
        for grp in opt.param_groups:
            grp["lr"] = lr * min(1.0, (step + 1) / 50)
        with torch.no_grad():
            text_states = text(ids).last_hidden_state
        down, mid = controlnet(xt, t, text_states, controlnet_cond=cond_image, return_dict=False)
        pred = unet(
            xt, t, text_states, down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample  # fmt: skip
        loss = (weight[t] * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 10 == 0 or step == steps:
            with torch.no_grad():  # the frozen base alone on the same batch: what control adds
                base_err = ((unet(xt, t, text_states).sample - target) ** 2).mean(dim=(1, 2, 3))
                base_loss = (weight[t] * base_err).mean().item()
            now = time.time()
            _log(run, {"step": step, "loss": round(loss.item(), 5),
                       "base_loss": round(base_loss, 5), "grad_norm": round(gn.item(), 4),
                       "it_s": round((step - last_step) / (now - last), 3),
                       "elapsed_s": round(now - t0, 1)})  # fmt: skip
            last, last_step = now, step
        if step % ckpt_every == 0 or step == steps:
            save_checkpoint(ckpt, {"controlnet": controlnet}, opt, step)
    return controlnet


def export(controlnet, out: Path) -> None:
    # fp16 halves the shipped size; the app loads it back as fp32 on CPUs
    copy.deepcopy(controlnet).half().save_pretrained(str(out), safe_serialization=True)


def main(argv: list[str] | None = None) -> None:
    from studio.paths import DEMO_CONTROLNETS, DEMO_MODEL

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--run", type=Path, required=True, help="checkpoint and cache folder")
    p.add_argument("--steps", type=int, default=900, help="total steps (resumes from the run)")
    p.add_argument("--base", type=Path, default=DEMO_MODEL, help="demo model folder (diffusers)")
    p.add_argument("--random-base", action="store_true", help="random demo-shaped base (smoke)")
    p.add_argument("--out", type=Path, default=None, help="export folder (default: shipped)")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--scenes", type=int, default=4096, help="training scenes (cached latents)")
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch = _torch()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    try:
        controlnet = train(
            a.run, a.kind, None if a.random_base else a.base, a.steps, seed=a.seed,
            batch=a.batch, lr=a.lr, scenes=a.scenes, ckpt_every=a.ckpt_every,
        )  # fmt: skip
    except ValueError as e:
        raise SystemExit(str(e)) from e
    if not a.no_export:
        out = a.out or DEMO_CONTROLNETS / a.kind
        export(controlnet, out)
        print(f"exported to {out}", flush=True)
    print(f"{a.kind}: {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
