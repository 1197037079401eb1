"""Train the demo model from a seed: VAE, latents, decoder, UNet + text encoder, export.

    python -m studio.demo.train --run demo_run --seed 0

regenerates resources/models/demo with the default flags (the shipped recipe). Stages, in order:
vae (1500 steps on 64 px crops), latents (16384 scenes encoded once, scaling_factor = 1/std),
decoder (1000 steps, encoder frozen so the latents stay valid), unet (v-prediction, batch 32:
--warm-steps with cross-attention only, then --unet-steps with the pooled prompt added to the
timestep embedding; Min-SNR-5 weighting until --min-snr-steps, then the plain v loss, and from
--layout-focus-from half of each batch at the noisier timesteps, where placement is learnt;
EMA decay --ema-decay, then --long-ema-decay after --long-ema-from), export (diffusers folder;
UNet stored fp16, loaded as fp32).

Each stage checkpoints to the run folder (safetensors) and resumes from it. Batches, noise and
caption choices are drawn from generators seeded by (seed, step), so a resumed run produces the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np

from studio.demo import models, world
from studio.demo.tokenizer import build_tokenizer_files, load_tokenizer

# Scene seeds: training draws from [TRAIN_SEED_BASE, +N); evaluation uses EVAL_SEED_BASE.
TRAIN_SEED_BASE = 1_000_000
EVAL_SEED_BASE = 9_000_000
STAGES = ("vae", "latents", "decoder", "unet", "export")


def _torch():
    import torch

    return torch


def _step_seed(seed: int, stage: str, step: int) -> int:
    return (seed * 1_000_003 + hash_stage(stage) * 7_919 + step) % (2**63)


def hash_stage(stage: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(stage))


def _log(run: Path, name: str, record: dict) -> None:
    with open(run / f"{name}.log", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------- checkpoints (safetensors)


def save_checkpoint(path: Path, modules: dict, optimizer, step: int) -> None:
    from safetensors.torch import save_file

    torch = _torch()
    tensors = {}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().contiguous()
    if optimizer is not None:
        for i, state in enumerate(_opt_states(optimizer)):
            for k, v in state.items():
                t = v if torch.is_tensor(v) else torch.tensor(float(v))
                tensors[f"__opt.{i}.{k}"] = t.detach().contiguous().reshape(t.shape)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step)})
    tmp.replace(path)


def _opt_states(optimizer) -> list[dict]:
    return [optimizer.state.get(p, {}) for g in optimizer.param_groups for p in g["params"]]


def load_checkpoint(path: Path, modules: dict, optimizer) -> int:
    from safetensors import safe_open

    torch = _torch()
    with safe_open(str(path), framework="pt") as f:
        step = int(f.metadata()["step"])
        keys = list(f.keys())
        for name, module in modules.items():
            prefix = f"{name}."
            sd = {k[len(prefix) :]: f.get_tensor(k) for k in keys if k.startswith(prefix)}
            module.load_state_dict(sd)
        if optimizer is not None:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            for i, p in enumerate(params):
                state = {}
                for k in ("step", "exp_avg", "exp_avg_sq"):
                    key = f"__opt.{i}.{k}"
                    if key in keys:
                        state[k] = f.get_tensor(key)
                if state:
                    state["step"] = state["step"].to(torch.float32)
                    optimizer.state[p] = state
    return step


# ---------------------------------------------------------------- data


def scene_images(seeds: list[int], size: int = world.NATIVE_SIZE):
    """Scenes rendered as a float tensor in [-1, 1], N x 3 x H x W."""
    torch = _torch()
    arr = np.stack([world.make_scene(s, size).rendering.image for s in seeds])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ---------------------------------------------------------------- stage 1: VAE


def train_vae(run: Path, seed: int, steps: int, batch: int, crop: int, lr: float) -> None:
    torch = _torch()
    ckpt = run / "vae.safetensors"
    torch.manual_seed(seed)
    vae = models.build_vae()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    step = load_checkpoint(ckpt, {"vae": vae}, opt) if ckpt.exists() else 0
    vae.train()
    t0, last = time.time(), time.time()
    while step < steps:
        g = torch.Generator().manual_seed(_step_seed(seed, "vae", step))
        rng = random.Random(_step_seed(seed, "vae", step))
        seeds = [TRAIN_SEED_BASE + rng.randrange(10**6) for _ in range(batch)]
        x = scene_images(seeds)
        if crop < x.shape[-1]:
            offs = torch.randint(0, x.shape[-1] - crop + 1, (2,), generator=g).tolist()
            x = x[:, :, offs[0] : offs[0] + crop, offs[1] : offs[1] + crop]
        for grp in opt.param_groups:  # short warmup, then cosine to 10%
            w = min(1.0, (step + 1) / 100)
            grp["lr"] = lr * w * (0.55 + 0.45 * math.cos(math.pi * step / steps))
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        l1 = (rec - x).abs().mean()
        l2 = ((rec - x) ** 2).mean()
        kl = post.kl().mean()  # summed over latent elements, averaged over the batch
        # A light KL keeps latents near unit scale without blurring flat colours.
        loss = l1 + l2 + 1e-7 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step == steps:
            now = time.time()
            _log(run, "vae", {"step": step, "l1": l1.item(), "l2": l2.item(), "kl": kl.item(),
                              "it_s": 25 / (now - last), "elapsed_s": now - t0})  # fmt: skip
            last = now
        if step % 200 == 0 or step == steps:
            save_checkpoint(ckpt, {"vae": vae}, opt, step)


def train_decoder(run: Path, seed: int, steps: int, batch: int, crop: int, lr: float) -> None:
    """Sharpen the decoder with the encoder frozen: the latents, hence the UNet, are unchanged."""
    torch = _torch()
    ckpt = run / "decoder.safetensors"
    vae = models.build_vae()
    load_checkpoint(run / "vae.safetensors", {"vae": vae}, None)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    step = load_checkpoint(ckpt, {"vae": vae}, opt) if ckpt.exists() else 0
    vae.train()
    t0, last = time.time(), time.time()
    while step < steps:
        g = torch.Generator().manual_seed(_step_seed(seed, "decoder", step))
        rng = random.Random(_step_seed(seed, "decoder", step))
        x = scene_images([TRAIN_SEED_BASE + rng.randrange(10**6) for _ in range(batch)])
        if crop < x.shape[-1]:
            offs = [
                8 * v
                for v in torch.randint(0, (x.shape[-1] - crop) // 8 + 1, (2,), generator=g).tolist()
            ]
            x = x[:, :, offs[0] : offs[0] + crop, offs[1] : offs[1] + crop]
        for grp in opt.param_groups:
            grp["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        with torch.no_grad():
            post = vae.encode(x).latent_dist
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        l1 = (rec - x).abs().mean()
        l2 = ((rec - x) ** 2).mean()
        loss = l1 + l2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step == steps:
            now = time.time()
            _log(run, "decoder", {"step": step, "l1": l1.item(), "l2": l2.item(),
                                  "it_s": 25 / (now - last), "elapsed_s": now - t0})  # fmt: skip
            last = now
        if step % 100 == 0 or step == steps:
            save_checkpoint(ckpt, {"vae": vae}, opt, step)


# ---------------------------------------------------------------- stage 2: latents


def encode_latents(run: Path, seed: int, n: int, batch: int = 64) -> None:
    from safetensors.torch import load_file, save_file

    torch = _torch()
    out = run / "latents.safetensors"
    if out.exists():
        return
    vae = models.build_vae()
    load_checkpoint(run / "vae.safetensors", {"vae": vae}, None)
    vae.eval()
    partial = run / "latents_partial.safetensors"
    chunks = list(load_file(str(partial)).values()) if partial.exists() else []
    done = sum(c.shape[0] for c in chunks)
    t0 = time.time()
    with torch.no_grad():
        for start in range(done, n, batch):
            seeds = [TRAIN_SEED_BASE + i for i in range(start, min(n, start + batch))]
            chunks.append(vae.encode(scene_images(seeds)).latent_dist.mean.contiguous())
            if len(chunks) % 20 == 0:
                save_file({f"{i:05d}": c for i, c in enumerate(chunks)}, str(partial))
                _log(run, "latents", {"done": start + batch, "elapsed_s": time.time() - t0})
    latents = torch.cat(chunks)
    scaling = float(1.0 / latents.std())
    save_file({"latents": latents}, str(out), metadata={"scaling_factor": str(scaling)})
    _log(run, "latents", {"n": n, "scaling_factor": scaling, "elapsed_s": time.time() - t0})
    partial.unlink(missing_ok=True)


# ---------------------------------------------------------------- stage 3: UNet + text encoder


def _ema_update(ema: dict, modules: dict, decay: float) -> None:
    torch = _torch()
    with torch.no_grad():
        for name, module in modules.items():
            for k, v in module.state_dict().items():
                if v.dtype.is_floating_point:
                    ema[f"{name}.{k}"].mul_(decay).add_(v, alpha=1 - decay)


def loss_weight(snr, prediction: str, min_snr: bool):
    """Per-sample weight of the MSE on the model's target.

    Min-SNR-5 (Hang et al. 2023) converges fast on detail, but for v-prediction it weights a
    step by ~SNR at high noise, so the steps that place objects (SNR < 0.1) learn almost
    nothing: the model then ignores "left" and "right". The plain v loss weights all steps
    alike; for epsilon, plain means weight 1 on the noise error.
    """
    torch = _torch()
    if not min_snr:
        return torch.ones_like(snr)
    clamped = torch.clamp(snr, max=5.0)
    return clamped / (snr + 1) if prediction == "v_prediction" else clamped / snr


def draw_timesteps(batch: int, num_train: int, generator, layout_focus: bool):
    """Uniform timesteps; with layout_focus, the second half of the batch from the noisier half.

    Where objects go is decided at high noise, and the model learns the position words only
    when it sees enough of those steps.
    """
    torch = _torch()
    if not layout_focus:
        return torch.randint(0, num_train, (batch,), generator=generator)
    half = batch // 2
    return torch.cat([
        torch.randint(0, num_train, (half,), generator=generator),
        torch.randint(num_train // 2, num_train, (batch - half,), generator=generator),
    ])  # fmt: skip


def train_unet(
    run: Path,
    seed: int,
    steps: int,
    batch: int,
    lr: float,
    dropout: float,
    ckpt_every: int,
    ema_decay: float,
    prediction: str,
    pooled_text: bool = True,
    init_from: Path | None = None,
    data: Path | None = None,
    min_snr_steps: int | None = None,
    layout_focus_from: int | None = None,
    long_ema: tuple[float, int] | None = None,
) -> None:
    from diffusers import DDPMScheduler
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    torch = _torch()
    min_snr_steps = steps if min_snr_steps is None else min_snr_steps
    layout_focus_from = steps if layout_focus_from is None else layout_focus_from
    data = data or run  # where the tokenizer and the cached latents are
    run.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(data / "tokenizer")
    with safe_open(str(data / "latents.safetensors"), framework="pt") as f:
        scaling = float(f.metadata()["scaling_factor"])
        latents = f.get_tensor("latents") * scaling
    n = latents.shape[0]
    layouts = [world.sample_layout(random.Random(TRAIN_SEED_BASE + i)) for i in range(n)]
    torch.manual_seed(seed)
    unet = models.build_unet(pooled_text)
    text = models.build_text_encoder(len(tok), tok.bos_token_id, tok.eos_token_id)
    mods = {"unet": unet, "text": text}
    ckpt = run / "unet.safetensors"
    if init_from is not None and not ckpt.exists():
        # Warm start from another run's EMA weights; layers it lacks keep their init.
        start = load_file(str(init_from / "unet_ema.safetensors"))
        missing = unet.load_state_dict(
            {k[5:]: v for k, v in start.items() if k.startswith("unet.")}, strict=False
        ).missing_keys
        text.load_state_dict({k[5:]: v for k, v in start.items() if k.startswith("text.")})
        _log(run, "unet", {"init_from": str(init_from), "new_keys": len(missing)})
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    ema_path = run / "unet_ema.safetensors"
    step = load_checkpoint(ckpt, mods, opt) if ckpt.exists() else 0
    if ema_path.exists():
        ema = load_file(str(ema_path))
    else:
        ema = {f"{m}.{k}": v.detach().clone() for m, mod in mods.items()
               for k, v in mod.state_dict().items()}  # fmt: skip
    config = {"prediction_type": prediction, "pooled_text": pooled_text}
    (run / "unet_config.json").write_text(json.dumps(config))
    sched = DDPMScheduler(**{**models.TRAIN_SCHEDULE, "prediction_type": prediction})
    alphas = sched.alphas_cumprod
    snr = alphas / (1 - alphas)
    unet.train()
    text.train()
    t0, last = time.time(), time.time()
    while step < steps:
        g = torch.Generator().manual_seed(_step_seed(seed, "unet", step))
        rng = random.Random(_step_seed(seed, "unet", step))
        idx = [rng.randrange(n) for _ in range(batch)]
        caps = ["" if rng.random() < dropout else world.caption(layouts[i], rng) for i in idx]
        ids = tok(caps, padding="max_length", max_length=tok.model_max_length,
                  truncation=True, return_tensors="pt").input_ids  # fmt: skip
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=g)
        t = draw_timesteps(batch, sched.config.num_train_timesteps, g,
                           layout_focus=step >= layout_focus_from)  # fmt: skip
        xt = sched.add_noise(x0, noise, t)
        for grp in opt.param_groups:
            grp["lr"] = lr * min(1.0, (step + 1) / 200)
        cond = text(ids).last_hidden_state
        pred = unet(xt, t, cond).sample
        target = sched.get_velocity(x0, noise, t) if prediction == "v_prediction" else noise
        w = loss_weight(snr[t], prediction, min_snr=step < min_snr_steps)
        loss = (w * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = long_ema[0] if long_ema and step > long_ema[1] else ema_decay
        _ema_update(ema, mods, min(decay, (1 + step) / (10 + step)))
        if step % 10 == 0 or step == steps:
            now = time.time()
            _log(run, "unet", {"step": step, "loss": loss.item(), "grad_norm": gn.item(),
                               "it_s": 10 / (now - last), "elapsed_s": now - t0})  # fmt: skip
            last = now
        if step % ckpt_every == 0 or step == steps:
            save_checkpoint(ckpt, mods, opt, step)
            save_file(ema, str(ema_path.with_suffix(".tmp")), metadata={"step": str(step)})
            ema_path.with_suffix(".tmp").replace(ema_path)


# ---------------------------------------------------------------- stage 4: export


def export(run: Path, out: Path, use_ema: bool = True) -> None:
    import diffusers
    from diffusers import StableDiffusionPipeline
    from safetensors import safe_open
    from safetensors.torch import load_file

    torch = _torch()
    tok = load_tokenizer(run / "tokenizer")
    with safe_open(str(run / "latents.safetensors"), framework="pt") as f:
        scaling = float(f.metadata()["scaling_factor"])
    vae = models.build_vae()
    decoder = run / "decoder.safetensors"
    load_checkpoint(decoder if decoder.exists() else run / "vae.safetensors", {"vae": vae}, None)
    vae.register_to_config(scaling_factor=scaling)
    config = json.loads((run / "unet_config.json").read_text())
    unet = models.build_unet(config.pop("pooled_text", True))
    text = models.build_text_encoder(len(tok), tok.bos_token_id, tok.eos_token_id)
    if use_ema:
        ema = load_file(str(run / "unet_ema.safetensors"))
        unet.load_state_dict({k[5:]: v for k, v in ema.items() if k.startswith("unet.")})
        text.load_state_dict({k[5:]: v for k, v in ema.items() if k.startswith("text.")})
    else:
        load_checkpoint(run / "unet.safetensors", {"unet": unet, "text": text}, None)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tok,
        unet=unet,
        scheduler=getattr(diffusers, models.DEFAULT_SCHEDULER).from_config(
            models.shipped_scheduler_config(**config)
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    # The UNet is stored in fp16 to halve the download-free footprint; diffusers loads it back
    # as fp32 unless asked otherwise. transformers keeps a stored dtype, so the text encoder
    # (small anyway) stays fp32.
    unet.to(torch.float16)
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(str(out), safe_serialization=True)
    shipped = {
        **models.shipped_scheduler_config(**config),
        "_diffusers_version": diffusers.__version__,
    }
    (out / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(shipped, indent=2, sort_keys=True) + "\n"
    )
    # transformers 5 saves only tokenizer.json; ship the plain vocab.json + merges.txt that
    # every CLIPTokenizer version reads.
    shutil.rmtree(out / "tokenizer")
    build_tokenizer_files(out / "tokenizer")


def main(argv: list[str] | None = None) -> None:
    from studio.paths import DEMO_MODEL

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("demo_train_run"), help="checkpoint folder")
    p.add_argument("--out", type=Path, default=DEMO_MODEL, help="exported diffusers folder")
    p.add_argument("--stages", default=",".join(STAGES), help="comma list of " + ", ".join(STAGES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vae-steps", type=int, default=1500)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-crop", type=int, default=64, help="random crop size for VAE training")
    p.add_argument("--vae-lr", type=float, default=6e-4)
    p.add_argument("--decoder-steps", type=int, default=1000, help="decoder-only fine-tune")
    p.add_argument("--decoder-crop", type=int, default=96)
    p.add_argument("--scenes", type=int, default=16384, help="scenes encoded for UNet training")
    p.add_argument("--unet-steps", type=int, default=13300)
    p.add_argument("--unet-batch", type=int, default=32)
    p.add_argument("--unet-lr", type=float, default=4e-4)
    p.add_argument("--caption-dropout", type=float, default=0.15)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--long-ema-decay", type=float, default=0.999, help="EMA decay of the long run")
    p.add_argument(
        "--long-ema-from", type=int, default=2000, help="UNet step after which it applies"
    )
    p.add_argument("--no-pooled-text", action="store_true", help="UNet without pooled prompt")
    p.add_argument("--init-from", type=Path, default=None, help="warm start from this run")
    p.add_argument(
        "--warm-steps",
        type=int,
        default=1600,
        help="first train a UNet without the pooled-prompt path for this many steps (in\n"
        "RUN/phase1), then warm-start the final UNet from it; 0 = train the final one only",
    )
    p.add_argument(
        "--prediction",
        choices=("v_prediction", "epsilon"),
        default="v_prediction",
        help="UNet target; v learns the global colours (high noise) much faster here",
    )
    p.add_argument(
        "--min-snr-steps",
        type=int,
        default=4400,
        help="UNet steps trained with Min-SNR-5 weighting before the plain v loss takes over\n"
        "(the warm phase uses Min-SNR throughout)",
    )
    p.add_argument(
        "--layout-focus-from",
        type=int,
        default=6200,
        help="UNet step from which half of each batch is drawn from the noisier half of the\n"
        "timesteps, where object placement is learnt",
    )
    p.add_argument("--no-ema", action="store_true", help="export raw weights, not the EMA")
    a = p.parse_args(argv)
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"Unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    torch = _torch()
    torch.set_num_threads(a.threads)
    a.run.mkdir(parents=True, exist_ok=True)
    build_tokenizer_files(a.run / "tokenizer")
    for stage in stages:
        t0 = time.time()
        if stage == "vae":
            train_vae(a.run, a.seed, a.vae_steps, a.vae_batch, a.vae_crop, a.vae_lr)
        elif stage == "latents":
            encode_latents(a.run, a.seed, a.scenes)
        elif stage == "decoder":
            train_decoder(a.run, a.seed, a.decoder_steps, a.vae_batch, a.decoder_crop, a.vae_lr / 2)
        elif stage == "unet":
            common = (a.seed, a.unet_batch, a.unet_lr, a.caption_dropout, a.ckpt_every,
                      a.ema_decay, a.prediction)  # fmt: skip
            init_from = a.init_from
            if a.warm_steps and init_from is None:
                # Phase 1: cross-attention only; phase 2 adds the pooled-prompt path.
                init_from = a.run / "phase1"
                seed, *rest = common
                train_unet(init_from, seed, a.warm_steps, *rest, pooled_text=False, data=a.run)
            seed, *rest = common
            train_unet(a.run, seed, a.unet_steps, *rest, pooled_text=not a.no_pooled_text,
                       init_from=init_from, min_snr_steps=a.min_snr_steps,
                       layout_focus_from=a.layout_focus_from,
                       long_ema=(a.long_ema_decay, a.long_ema_from))  # fmt: skip
        elif stage == "export":
            export(a.run, a.out, use_ema=not a.no_ema)
        _log(a.run, "stages", {"stage": stage, "wall_s": round(time.time() - t0, 1)})
        print(f"{stage}: {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
