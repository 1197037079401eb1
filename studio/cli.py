"""`studio`: the GUI with no subcommand; `generate`, `regenerate`, `info`, `samplers`, `models`,
`install-desktop`, `doctor`.

Heavy imports (torch, diffusers) happen inside the commands that need them, so `studio info`
and `studio --help` answer at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from studio import __version__
from studio.engine.request import (
    DEMO_MODEL_REF,
    MODES,
    PREDICTION_TYPES,
    RNG_SOURCES,
    TIMESTEP_SPACINGS,
    GenerationRequest,
    GenerationResult,
    ScheduleOptions,
    StepUpdate,
)

SAMPLER_HELP = (
    "Euler, Euler a, DDIM, DDPM, DPM++ 2M, DPM++ 2M Karras, DPM++ 2M SDE Karras, "
    "DPM++ SDE Karras, UniPC, LMS, Heun, LCM"
)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _run_gui(["--verbose"] if args.verbose else [])
    from studio.desktop.logs import setup as setup_logging

    setup_logging(verbose=args.verbose)
    try:
        return args.func(args)
    except ValueError as e:  # user errors: one line that says what to do, exit code 1
        print(f"studio: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("studio: cancelled", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Diffusion Studio")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbose_help = "show library warnings in the terminal (always in the log file)"
    parser.add_argument("--verbose", "-v", action="store_true", help=verbose_help)
    sub = parser.add_subparsers(dest="command")

    gen = sub.add_parser("generate", help="generate images from a prompt")
    _add_request_options(gen)
    _add_output_options(gen)
    gen.set_defaults(func=_cmd_generate)

    regen = sub.add_parser("regenerate", help="generate an exported image again from its metadata")
    regen.add_argument("image", type=Path)
    _add_output_options(regen)
    regen.set_defaults(func=_cmd_regenerate)

    info = sub.add_parser("info", help="print the generation settings stored in an image")
    info.add_argument("image", type=Path)
    info.add_argument("--json", action="store_true", help="print the recipe as JSON")
    info.set_defaults(func=_cmd_info)

    samplers = sub.add_parser("samplers", help="list the samplers")
    samplers.set_defaults(func=_cmd_samplers)

    models = sub.add_parser("models", help="list the models in folders (all kinds)")
    models.add_argument(
        "folders", nargs="*", type=Path, help="default: the demo and the window's model folders"
    )
    models.add_argument("--json", action="store_true", help="print JSON, for scripts")
    models.add_argument(
        "--hash", action="store_true", help="compute missing A1111 short hashes (reads each file)"
    )
    models.set_defaults(func=_cmd_models)

    desktop = sub.add_parser(
        "install-desktop", help="add Diffusion Studio to this user's application menu"
    )
    desktop.add_argument("--uninstall", action="store_true", help="remove what it added")
    desktop.set_defaults(func=_cmd_install_desktop)

    doctor = sub.add_parser("doctor", help="check Python, torch, GPU, Qt, memory and folders")
    doctor.set_defaults(func=_cmd_doctor)
    for command in sub.choices.values():
        # also after the command (`studio generate -v`); SUPPRESS keeps the top level's value
        command.add_argument(
            "--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help=verbose_help
        )
    return parser


def _add_request_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", "-p", default="")
    p.add_argument("--negative-prompt", "-n", default="")
    p.add_argument(
        "--model",
        "-m",
        default=DEMO_MODEL_REF,
        help="'demo', a folder, a .safetensors file or a hub id",
    )
    p.add_argument("--mode", choices=MODES, help="default: from --init-image / --mask")
    p.add_argument("--sampler", "-s", default="DPM++ 2M Karras", help=SAMPLER_HELP)
    p.add_argument(
        "--schedule-type", choices=("Automatic", "Karras", "Uniform"), default="Automatic"
    )
    p.add_argument("--timestep-spacing", choices=TIMESTEP_SPACINGS)
    p.add_argument("--zero-snr", action="store_true", help="rescale betas to zero terminal SNR")
    p.add_argument("--prediction-type", choices=PREDICTION_TYPES, help="override the model's")
    p.add_argument("--cfg-rescale", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", "--cfg-scale", dest="cfg_scale", type=float, default=7.0)
    p.add_argument("--seed", type=int, default=-1, help="0 to 2**63-1; -1 (default): random")
    p.add_argument(
        "--rng",
        choices=RNG_SOURCES,
        default="CPU",
        help="noise source: CPU (default), GPU (A1111's default; NV without CUDA), NV",
    )
    p.add_argument("--ensd", type=int, default=0, help="eta noise seed delta, as A1111's ENSD")
    p.add_argument(
        "--clip-skip", type=int, default=1, help="A1111 numbering: 2 reads the penultimate layer"
    )
    p.add_argument(
        "--width", "-W", type=int, help="a multiple of 8, 64 or more; omitted: the model's native"
    )
    p.add_argument(
        "--height", "-H", type=int, help="a multiple of 8, 64 or more; omitted: the model's native"
    )
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument(
        "--batch-count",
        type=int,
        default=1,
        help="jobs, each of --batch-size images, seeds continuing",
    )
    p.add_argument(
        "--strength", type=float, default=0.75, help="img2img/inpaint denoising strength"
    )
    p.add_argument("--init-image", type=Path)
    p.add_argument("--mask", type=Path, help="white = repaint")
    p.add_argument("--mask-blur", type=int, default=4)
    p.add_argument("--inpaint-only-masked", action="store_true")
    p.add_argument("--inpaint-padding", type=int, default=32)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        "-o",
        type=Path,
        help="output file (one image); its extension (.png, .jpg, .webp) sets the format. An "
        "existing file is never replaced: the run stops before any work",
    )
    p.add_argument(
        "--outdir", type=Path, help="output folder (default: the app's); new names, never replaced"
    )
    p.add_argument(
        "--format",
        choices=("png", "jpg", "webp"),
        default=None,
        help="for --outdir (default png); with --out it must match the file's extension",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument(
        "--allow-download",
        action="store_true",
        help="fetch a hub model that is not in the Hugging Face cache yet (off: never online)",
    )
    p.add_argument(
        "--memory",
        choices=MEMORY_POLICIES,
        default="auto",
        help="GPU memory: auto (from free VRAM and the model's size), none, model_offload, "
        "sequential_offload",
    )
    p.add_argument("--vae-tiling", action="store_true", help="decode large images in tiles")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


# the engine's memory policies (studio.engine.memory.POLICIES), without importing it here
MEMORY_POLICIES = ("auto", "none", "model_offload", "sequential_offload")


# ---- commands -----------------------------------------------------------------------------
def _cmd_generate(args: argparse.Namespace) -> int:
    from studio.engine.models import resolve_model
    from studio.engine.samplers import karras_of
    from studio.engine.seeds import resolve_seed

    # input files first: an unreadable one fails before any model work
    init_image = _open_image(args.init_image, "RGB")
    mask = _open_image(args.mask, "L")
    for flag, side in (("-W/--width", args.width), ("-H/--height", args.height)):
        if side == 0:  # not "native": only leaving the option out means that
            raise ValueError(
                f"{flag} 0 is not a size: give 64 or more (a multiple of 8), or leave {flag} "
                "out for the model's native size."
            )
    info = resolve_model(args.model)
    mode = args.mode or ("inpaint" if args.mask else "img2img" if args.init_image else "txt2img")
    request = GenerationRequest(
        mode=mode,
        model=args.model,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        sampler=args.sampler,
        schedule=ScheduleOptions(
            karras=karras_of(args.schedule_type),
            timestep_spacing=args.timestep_spacing,
            zero_snr=args.zero_snr,
            prediction_type=args.prediction_type,
            cfg_rescale=args.cfg_rescale,
        ),
        steps=args.steps,
        cfg_scale=args.cfg_scale,
        seed=resolve_seed(args.seed),
        rng=args.rng,
        ensd=args.ensd,
        clip_skip=args.clip_skip,
        # only an omitted size means native: -W 0 is checked (and refused) like any other number
        width=info.native_size if args.width is None else args.width,
        height=info.native_size if args.height is None else args.height,
        batch_size=args.batch_size,
        strength=args.strength,
        init_image=init_image,
        mask=mask,
        mask_blur=args.mask_blur,
        inpaint_only_masked=args.inpaint_only_masked,
        inpaint_padding=args.inpaint_padding,
    )
    return _run_and_save(request, args, batch_count=args.batch_count)


def _cmd_regenerate(args: argparse.Namespace) -> int:
    from studio.engine.metadata import read_settings

    found = read_settings(args.image)
    request = found.single_image_request()
    if request is None:
        print(f"studio: {args.image} holds no generation settings{_why(found)}", file=sys.stderr)
        return 1
    if found.source != "studio":
        print(
            f"note: settings read from {found.source} metadata; results may differ.",
            file=sys.stderr,
        )
    for key, value in found.unmapped.items():
        print(f"note: not restored: {key}: {value}", file=sys.stderr)
    missing = request.missing_images()
    if missing:
        raise ValueError(
            f"{args.image} does not carry its {', '.join(missing)}; cannot regenerate it."
        )
    return _run_and_save(request, args)


def _cmd_info(args: argparse.Namespace) -> int:
    from studio.engine.metadata import read_settings

    try:
        found = read_settings(args.image)
    except (ValueError, OSError) as e:
        print(f"studio: {e}", file=sys.stderr)
        return 1
    if found.request is None:
        print(f"studio: {args.image} holds no generation settings{_why(found)}", file=sys.stderr)
        return 1
    if args.json:
        print(found.request.to_json(embed_images=False))
        return 0
    r = found.request
    print(f"source:          {found.source}")
    print(f"prompt:          {r.prompt}")
    print(f"negative prompt: {r.negative_prompt}")
    print(f"mode:            {r.mode}")
    print(f"model:           {r.model}")  # what regenerate would load
    recorded = " ".join(x for x in (found.model_name, found.model_hash) if x)
    if recorded and recorded != r.model:
        print(f"recorded model:  {recorded}")
    print(f"sampler:         {r.sampler} ({_schedule_text(r.schedule)})")
    print(f"steps:           {r.steps}")
    print(f"CFG scale:       {r.cfg_scale:g}")
    print(f"seed:            {found.image_seed if found.image_seed is not None else r.seed}")
    print(f"size:            {r.width}x{r.height}")
    if r.mode != "txt2img":
        print(f"strength:        {r.strength:g}")
    print(f"clip skip, RNG:  {r.clip_skip}, {r.rng}" + (f", ENSD {r.ensd}" if r.ensd else ""))
    for name in found.substituted:
        print(f"not from image:  {name} (the image's value cannot be used here)")
    for key, value in found.unmapped.items():
        print(f"not mapped:      {key}: {value}")
    for warning in found.warnings:
        print(f"warning:         {warning}")
    return 0


def _cmd_samplers(args: argparse.Namespace) -> int:
    from studio.engine.samplers import SAMPLER_SPECS

    for name, spec in SAMPLER_SPECS.items():
        print(f"{name:22} {spec.scheduler}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from studio.engine.library import add_hashes, format_table, scan, to_json
    from studio.paths import DEMO_MODEL
    from studio.settings import load, settings_path

    for folder in args.folders:
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder; name folders of models.")
    folders = list(args.folders)
    if not folders:  # the shipped demo and the folders chosen in the window's model library
        folders = [DEMO_MODEL.parent, *map(Path, load(settings_path()).settings.model_folders)]
    entries = scan(folders)  # cached by path, size and mtime: instant the second time
    if args.hash:
        entries = add_hashes(entries)
    print(to_json(entries) if args.json else format_table(entries))
    return 0


# ---- shared --------------------------------------------------------------------------------
def _cmd_install_desktop(args: argparse.Namespace) -> int:
    from studio.desktop import launcher

    if args.uninstall:
        done = launcher.uninstall()
        print(f"removed {len(done.written)} file(s)" if done.written else "nothing to remove")
    else:
        done = launcher.install()
        print(f"installed the launcher: {done.written[0]}")
        if len(done.written) > 1:
            print(f"icons: {len(done.written) - 1} sizes under {done.written[1].parents[2]}")
    for note in done.notes:
        print(f"note: {note}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from studio.desktop import doctor

    checks = doctor.run()
    print(doctor.report(checks))
    return 1 if any(c.problem for c in checks) else 0


def _run_and_save(
    request: GenerationRequest, args: argparse.Namespace, batch_count: int = 1
) -> int:
    from studio.engine.batch import expand_batch
    from studio.engine.checks import check_request
    from studio.engine.devices import check_device

    # 1. Before the model load and any denoising: fail fast on bad input, device or destination
    check_request(request)
    jobs = expand_batch(request, batch_count)
    if args.out and len(jobs) * request.batch_size > 1:
        raise ValueError("--out names one file; use --outdir for a batch.")
    device = check_device(args.device)
    fmt = _check_destination(args)  # last: it creates the output folder
    from studio.engine.generate import generate
    from studio.engine.memory import call_freeing_memory
    from studio.engine.pipelines import PipelineCache

    # 2. Generate and save, job by job
    cache = PipelineCache(
        device=device,
        allow_downloads=args.allow_download,
        memory_policy=args.memory,
        vae_tiling=args.vae_tiling,
    )
    for k, job in enumerate(jobs, start=1):
        if len(jobs) > 1 and not args.quiet:
            print(f"job {k}/{len(jobs)}: seed {job.seed}", file=sys.stderr)
        progress = None if args.quiet else _Progress()
        # out of memory: a message suggesting a smaller size or offload, never a traceback
        result = call_freeing_memory(generate, job, cache, on_step=progress, preview_every=0)
        if progress:
            progress.done(result.elapsed_s)
        try:
            paths = _save(result, job, args, fmt)
        except (OSError, ValueError, RuntimeError) as e:
            return _keep_unsaved(result, e)  # the destination broke meanwhile: keep the image
        for path in paths:
            print(path, flush=True)  # as each job ends: an interrupted run still lists its files
    return 0


def _check_destination(args: argparse.Namespace) -> str:
    """The format to save in, once the destination has shown it can take the images."""
    from studio.engine.output import OutputFolder, check_destination, check_output_file

    if args.out:
        check_output_file(args.out, args.format)
        return args.out.suffix.lstrip(".").lower()
    fmt = args.format or "png"
    check_destination(OutputFolder(args.outdir).root, fmt)
    return fmt


def _save(
    result: GenerationResult, request: GenerationRequest, args: argparse.Namespace, fmt: str
) -> list[Path]:
    from studio.engine.output import OutputFolder, save_result

    if args.out:
        from studio.engine.metadata import write_image

        write_image(
            args.out,
            result.images[0],
            request,
            model_name=result.model_name,
            model_hash=result.model_hash,
            seed=result.seeds[0],
            format=fmt,
            overwrite=False,  # checked before the run; another writer may have taken it since
        )
        return [args.out]
    return save_result(result, OutputFolder(args.outdir), format=fmt)


def _keep_unsaved(result: GenerationResult, error: BaseException) -> int:
    """Saving failed after the work was done: keep the images in the temp folder, say where."""
    from studio.engine.output import keep_unsaved

    reason = _error_text(error)
    try:
        kept = keep_unsaved(result)
    except (OSError, ValueError, RuntimeError) as e:
        print(
            f"studio: the image could not be saved ({reason}), nor kept in the temp folder "
            f"({_error_text(e)}).",
            file=sys.stderr,
        )
        return 1
    names = ", ".join(str(p) for p in kept)
    print(
        f"studio: the image could not be saved ({reason}); it was kept as {names}: copy it "
        "from there.",
        file=sys.stderr,
    )
    return 1


def _error_text(e: BaseException) -> str:
    if isinstance(e, FileExistsError):
        return f"{e.filename or e} appeared meanwhile and is never replaced"
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e).rstrip(".") or type(e).__name__


def _why(found: Any) -> str:
    """The reader's warnings, on the same line: why nothing usable was found."""
    if not found.warnings:
        return "."
    return ": " + " ".join(" ".join(str(w).split()) for w in found.warnings)


class _Progress:
    """A one-line progress bar on stderr: step i/n and it/s."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, update: StepUpdate) -> None:
        elapsed = time.perf_counter() - self.started
        width = 30
        filled = width * update.step // max(update.total, 1)
        rate = update.step / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "-" * (width - filled)
        print(f"\r[{bar}] {update.step}/{update.total} {rate:.1f} it/s", end="", file=sys.stderr)

    def done(self, seconds: float) -> None:
        print(f"\ndone in {seconds:.1f} s", file=sys.stderr)


def _open_image(path: Path | None, mode: str) -> Any:
    if path is None:
        return None
    from studio.engine.images import open_image

    return open_image(path, mode)


def _schedule_text(schedule: ScheduleOptions) -> str:
    from studio.engine.samplers import schedule_type_of

    parts = [schedule_type_of(schedule)]
    if schedule.timestep_spacing:
        parts.append(f"{schedule.timestep_spacing} spacing")
    if schedule.zero_snr:
        parts.append("zero-terminal SNR")
    if schedule.prediction_type:
        parts.append(schedule.prediction_type)
    if schedule.cfg_rescale:
        parts.append(f"CFG rescale {schedule.cfg_rescale:g}")
    return ", ".join(parts)


def _run_gui(argv: list[str]) -> int:
    try:
        from studio.ui.app import main as gui_main
    except ImportError as e:
        print(f"studio: the desktop app cannot start ({e}).", file=sys.stderr)
        return 1
    return gui_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
