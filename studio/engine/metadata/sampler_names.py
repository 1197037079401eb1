"""Our sampler names (with or without a " Karras" suffix) to and from other tools' sampler and
schedule names."""

from __future__ import annotations

from studio.engine.samplers import SAMPLERS  # the names users know; torch-free


def _split_karras(name: str) -> tuple[str, bool]:
    if name.endswith(" Karras"):
        return name[: -len(" Karras")], True
    return name, False


def effective_karras(sampler: str, karras: bool | None) -> bool:
    """Whether Karras sigmas are used: the explicit option, else what the sampler's name says."""
    return karras if karras is not None else _split_karras(sampler)[1]


def a1111_sampler(sampler: str, karras: bool | None) -> tuple[str, str]:
    """Our (sampler, karras option) as A1111 >= 1.9 writes them: (Sampler, Schedule type)."""
    base, suffixed = _split_karras(sampler)
    if karras is None:
        return base, "Karras" if suffixed else "Automatic"
    return base, "Karras" if karras else "Uniform"


def _resolve_sampler(base: str, karras: bool | None) -> tuple[str, bool | None] | None:
    """A base name (no Karras suffix) and wanted Karras use -> our (sampler, karras option)."""
    with_k = f"{base} Karras"
    plain_ok, k_ok = base in SAMPLERS, with_k in SAMPLERS
    if karras is True:
        if k_ok:
            return with_k, None
        if plain_ok:
            return base, True
    elif karras is False:
        if plain_ok:
            return base, False
        if k_ok:
            return with_k, False
    else:
        if plain_ok:
            return base, None
        if k_ok:
            return with_k, None
    return None
