"""Where generated images go: an output root, a naming pattern, atomic no-overwrite writes.

A pattern is a relative path with tokens, e.g. "{date}/{counter:05}-{seed}-{prompt}" gives
"2024-05-01/00042-1234-a_cat_in_a_hat.png" (the extension is added). Tokens: {date} (YYYY-MM-DD),
{time} (HH-MM-SS), {counter} (next free number in the image's folder), {seed}, {prompt} (slug),
{model}, {sampler}, {steps}, {width}, {height}, {index} (position in the batch). Every path is
checked to stay inside the root after symlinks are resolved; names are safe on Windows, macOS
and Linux; an existing file is never replaced.

Before any work, `check_destination` (a folder) or `check_output_file` (one named file) proves
that the image can be written, so a bad destination costs no denoising. If saving still fails
afterwards, `keep_unsaved` puts the images in a private folder under the temp folder, so a
finished image is never lost; `is_unsaved` tells such a file apart.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import string
import tempfile
import unicodedata
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO

from studio.engine.request import GenerationRequest, GenerationResult

DEFAULT_PATTERN = "{date}/{counter:05}-{seed}-{prompt}"
PROMPT_SLUG_MAX = 60
COMPONENT_MAX_BYTES = 200  # below the 255-byte name limit of common filesystems
PATH_MAX = 240  # below Windows' classic 260-character limit
_MIN_SLUG = 8

INT_TOKENS = ("counter", "seed", "steps", "width", "height", "index")
STR_TOKENS = ("date", "time", "prompt", "model", "sampler")
TOKENS = INT_TOKENS + STR_TOKENS

_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in "123456789¹²³"),
    *(f"LPT{i}" for i in "123456789¹²³"),
}
_FORBIDDEN = set('<>:"/\\|?*')
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")
# Pillow's format for each name or extension a user may give, and the extension written for it
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
UNSAVED_PREFIX = "studio-unsaved-"  # the temp folders that hold images kept after a failed save


# ---- atomic writes ------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":
        return  # Windows cannot open a directory for fsync; its rename is already durable
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists, atomically: no race with another writer
    except FileExistsError:
        raise
    except (OSError, NotImplementedError):
        _publish_without_links(tmp, path)
        return
    os.unlink(tmp)


def _publish_without_links(tmp: Path, path: Path) -> None:
    """Filesystems without hard links (FAT, some network shares): a lock file made with O_EXCL
    reserves the name, so two writers cannot both find it free and the later replace the other."""
    lock = path.with_name(f".{path.name}.lock")
    try:
        os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        raise FileExistsError(path) from None  # another writer is publishing this name
    try:
        if os.path.lexists(path):
            raise FileExistsError(path)
        os.replace(tmp, path)
    finally:
        lock.unlink(missing_ok=True)


def atomic_save(
    path: str | os.PathLike[str],
    write_fn: Callable[[IO[bytes]], object],
    *,
    overwrite: bool = True,
) -> Path:
    """Write through write_fn into a temporary file beside `path`, fsync, then rename it into
    place, so readers never see a half-written file. overwrite=False raises FileExistsError
    rather than replacing an existing file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = None
    try:
        # O_EXCL: never follow or reuse someone else's file; 0o666 lets the umask decide.
        # Inside the try: a Ctrl+C arriving as the file is made must still remove it.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path, overwrite)
    except BaseException as e:
        if not (isinstance(e, FileExistsError) and fd is None):  # else: someone else's file
            tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True
) -> Path:
    return atomic_save(path, lambda f: f.write(data), overwrite=overwrite)


# ---- destinations, checked before any work ------------------------------------------------
def check_format(format: str) -> str:
    """Pillow's name for an image format a user gives (png, jpg, jpeg, webp)."""
    name = str(format).lower().lstrip(".")
    if name not in FORMATS:
        raise ValueError(f"Cannot save images as {format!r}: use png, jpg/jpeg or webp.")
    return FORMATS[name]


def check_destination(folder: str | os.PathLike[str], format: str = "png") -> Path:
    """The output folder, created if missing, once a file could be written into it and removed.
    Raises ValueError saying what to do when images of `format` cannot be saved there: a file in
    the folder's place, a broken or looping link, a read-only or virtual file system (/proc)."""
    check_format(format)
    folder = Path(folder).expanduser().absolute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # something that is not a folder has the name
        raise ValueError(_not_a_folder(folder)) from None
    except (OSError, RuntimeError) as e:
        raise ValueError(
            f"The output folder {folder} cannot be created ({_reason(e)}); choose another folder."
        ) from None
    if not folder.is_dir():
        raise ValueError(_not_a_folder(folder))
    probe = folder / f".studio-check-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
    except OSError as e:
        raise ValueError(
            f"Images cannot be written into the output folder {folder} ({_reason(e)}); "
            "choose another folder."
        ) from None
    finally:  # also after a Ctrl+C: the probe never stays behind
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return folder


def check_output_file(path: str | os.PathLike[str], format: str | None = None) -> str:
    """Pillow's format for writing exactly `path`, checked before any work. The name's extension
    decides the format: a `format` that disagrees is refused rather than writing, say, PNG bytes
    into a .jpg. An existing file is never replaced, and the folder must take a new file."""
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise ValueError(
            f"{path.name} needs the extension .png, .jpg or .webp: it decides the image format."
        )
    fmt = FORMATS[ext]
    if format is not None and check_format(format) != fmt:
        wanted = EXTENSIONS[check_format(format)]
        raise ValueError(
            f"{path.name} is named .{ext} but the format asked for is {format}; "
            f"name the file {path.stem}{wanted} or leave the format out."
        )
    if os.path.lexists(path):
        raise ValueError(f"{path} already exists; pick another name or remove it.")
    check_destination(path.parent, ext)
    return fmt


def _not_a_folder(folder: Path) -> str:
    if folder.is_symlink():
        return (
            f"The output folder {folder} is a link that leads nowhere (broken, or a loop); "
            "choose another folder."
        )
    return f"The output folder {folder} exists but is not a folder; choose another folder."


def _reason(e: BaseException) -> str:
    return (e.strerror if isinstance(e, OSError) and e.strerror else str(e)) or type(e).__name__


# ---- safe names ---------------------------------------------------------------------------
def slug(text: str, max_len: int = PROMPT_SLUG_MAX) -> str:
    """Letters and digits of any script kept, everything else one "_"; at most max_len."""
    text = unicodedata.normalize("NFC", text)
    chars = []
    for ch in text:
        cat = unicodedata.category(ch)
        chars.append(ch if cat[0] in "LN" or cat in ("Mn", "Mc") or ch == "-" else "_")
    out = re.sub(r"_+", "_", "".join(chars)).strip("_-")
    if len(out) > max_len:
        cut = out[:max_len]
        # end at a word boundary when one is near
        if "_" in cut[max_len // 2 :]:
            cut = cut[: cut.rindex("_")]
        out = cut.rstrip("_-")
    return out


def safe_component(name: str) -> str:
    """One path component that every common OS accepts and that cannot climb out."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(
        "_" if ch in _FORBIDDEN or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") else ch
        for ch in name
    )
    name = name.strip(" ").rstrip(". ")  # Windows drops trailing dots and spaces
    if name in ("", ".", ".."):
        return "_"
    stem = name.split(".")[0].rstrip(" ").upper()
    if stem in _WINDOWS_RESERVED:
        name = "_" + name
    return _truncate_bytes(name, COMPONENT_MAX_BYTES)


def _truncate_bytes(name: str, limit: int) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 8:
        stem, ext = name, ""
    keep = limit - len(ext.encode("utf-8")) - (1 if ext else 0)
    cut = stem.encode("utf-8")[:keep].decode("utf-8", errors="ignore").rstrip(". ")
    return f"{cut}.{ext}" if ext else cut


def _model_label(model: str) -> str:
    name = model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    for suffix in _MODEL_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


# ---- the output folder --------------------------------------------------------------------
def _parse_pattern(pattern: str) -> list[str]:
    """The pattern's path components, checked; raises ValueError with a readable reason."""
    if not pattern.strip():
        raise ValueError("The file name pattern is empty.")
    if "\\" in pattern:
        raise ValueError("Use / to separate folders in the file name pattern, not \\.")
    if pattern.startswith("/") or re.match(r"^[A-Za-z]:", pattern) or pattern.startswith("~"):
        raise ValueError("The file name pattern must be relative to the output folder.")
    parts = [p for p in pattern.split("/") if p]
    if not parts:
        raise ValueError("The file name pattern has no file name.")
    formatter = string.Formatter()
    for i, part in enumerate(parts):
        if part.strip() in (".", ".."):
            raise ValueError("The file name pattern may not contain '.' or '..' folders.")
        try:
            pieces = list(formatter.parse(part))
        except ValueError as e:
            raise ValueError(f"The file name pattern has a broken {{token}}: {e}.") from None
        for _literal, name, spec, conversion in pieces:
            if name is None:
                continue
            if name not in TOKENS:
                known = ", ".join("{" + t + "}" for t in TOKENS)
                raise ValueError(f"Unknown token {{{name}}} in the pattern; known: {known}.")
            if conversion:
                raise ValueError(f"Token {{{name}}} may not use a !conversion.")
            try:
                format(1 if name in INT_TOKENS else "x", spec or "")
            except ValueError:
                raise ValueError(f"Token {{{name}:{spec}}} has an invalid format.") from None
            if name == "counter" and i != len(parts) - 1:
                raise ValueError("{counter} may only be used in the file name, not in folders.")
    return parts


def _counter_regex(part: str) -> re.Pattern[str] | None:
    out, has_counter = "", False
    for literal, name, _spec, _conv in string.Formatter().parse(part):
        out += re.escape(safe_component(literal)) if literal.strip() else re.escape(literal)
        if name == "counter" and not has_counter:
            out += r"(\d+)"
            has_counter = True
        elif name is not None:
            out += ".*?"
    return re.compile(out) if has_counter else None


class OutputFolder:
    def __init__(self, root: str | os.PathLike[str] | None = None, pattern: str = DEFAULT_PATTERN):
        if root is None:
            from studio.paths import default_output_dir

            root = default_output_dir()
        self.root = Path(root).expanduser().absolute()
        self.pattern = pattern
        self._parts = _parse_pattern(pattern)
        self._counter_re = _counter_regex(self._parts[-1])

    def __repr__(self) -> str:
        return f"OutputFolder({str(self.root)!r}, {self.pattern!r})"

    # ---- checks ----
    def check_inside(self, path: Path) -> None:
        """Raise ValueError unless `path`, with every symlink resolved, lies inside the root."""
        real_root = self.root.resolve()
        real = Path(os.path.realpath(path))
        if real != real_root and real_root not in real.parents:
            raise ValueError(f"{path} would be outside the output folder {self.root}.")

    def next_counter(self, folder: Path) -> int:
        """1 + the highest counter among the names in `folder` that fit the pattern."""
        if self._counter_re is None or not folder.is_dir():
            return 1
        best = 0
        with os.scandir(folder) as entries:
            for entry in entries:
                m = self._counter_re.match(entry.name)
                if m:
                    best = max(best, int(m.group(1)))
        return best + 1

    # ---- names ----
    def _values(
        self,
        request: GenerationRequest,
        seed: int,
        index: int,
        now: datetime,
        model_name: str | None,
        prompt_len: int,
    ) -> dict[str, object]:
        return {
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%H-%M-%S"),
            "seed": seed,
            "prompt": slug(request.prompt, prompt_len) or "untitled",
            "model": slug(_model_label(model_name or request.model), 40) or "model",
            "sampler": slug(request.sampler, 40),
            "steps": request.steps,
            "width": request.width,
            "height": request.height,
            "index": index,
        }

    def _relative(self, values: dict[str, object], counter: int, suffix: str, ext: str) -> Path:
        parts = []
        for i, part in enumerate(self._parts):
            text = part.format(**values, counter=counter)
            last = i == len(self._parts) - 1
            if last:
                text = text.strip("_- ") or "image"
                text = _truncate_bytes(text, COMPONENT_MAX_BYTES - 20) + suffix + ext
            parts.append(safe_component(text))
        return Path(*parts)

    def path_for(
        self,
        request: GenerationRequest,
        seed: int,
        index: int,
        ext: str,
        *,
        now: datetime | None = None,
        model_name: str | None = None,
    ) -> Path:
        """A free path inside the root for this image; creates nothing."""
        ext = "." + ext.lstrip(".").lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,8}", ext):
            raise ValueError(f"{ext!r} is not a file extension.")
        now = now or datetime.now()
        prompt_len = PROMPT_SLUG_MAX
        while True:
            values = self._values(request, seed, index, now, model_name, prompt_len)
            rel = self._relative(values, 0, "", ext)
            if len(str(self.root / rel)) <= PATH_MAX or prompt_len <= _MIN_SLUG:
                break
            prompt_len = max(_MIN_SLUG, prompt_len - 8)
        folder = self.root / rel.parent
        self.check_inside(folder)
        counter = self.next_counter(folder)
        for attempt in range(100_000):
            if self._counter_re is not None:
                rel = self._relative(values, counter + attempt, "", ext)
            else:
                rel = self._relative(values, 0, f"-{attempt + 1}" if attempt else "", ext)
            path = self.root / rel
            if len(str(path)) > PATH_MAX + 20:
                raise ValueError(
                    f"The output folder path is too long for safe file names: {self.root}"
                )
            if not os.path.lexists(path):
                self.check_inside(path)
                return path
        raise ValueError(f"No free file name left in {folder}.")


# ---- saving a result ----------------------------------------------------------------------
def save_result(
    result: GenerationResult,
    folder: OutputFolder | str | os.PathLike[str] | None = None,
    format: str = "png",
    *,
    now: datetime | None = None,
) -> list[Path]:
    """Save every image of a finished job with its metadata; a cancelled job saves nothing."""
    from studio.engine import metadata  # metadata imports this module for atomic_save

    if result.cancelled or not result.images:
        return []
    if not isinstance(folder, OutputFolder):
        folder = OutputFolder(folder)
    fmt = check_format(format)
    ext = EXTENSIONS[fmt]
    now = now or datetime.now()
    request = result.request
    saved: list[Path] = []
    for k, image in enumerate(result.images):
        seed = result.seeds[k] if k < len(result.seeds) else request.seed + k
        for _ in range(100):
            path = folder.path_for(request, seed, k, ext, now=now, model_name=result.model_name)
            path.parent.mkdir(parents=True, exist_ok=True)
            folder.check_inside(path.parent)  # again, now that the folders exist
            try:
                metadata.write_image(
                    path,
                    image,
                    request,
                    model_name=result.model_name,
                    model_hash=result.model_hash,
                    index=k,
                    seed=seed,
                    format=fmt,
                    overwrite=False,
                )
            except FileExistsError:
                continue  # another writer took the name in between; pick the next one
            saved.append(path)
            break
        else:
            raise ValueError(f"Could not find a free file name in {folder.root}.")
    return saved


def keep_unsaved(result: GenerationResult) -> list[Path]:
    """After a failed save, keep the finished images: PNGs with their metadata in a new private
    folder under the temp folder (the output folder has just failed; nothing else is touched)."""
    folder = tempfile.mkdtemp(prefix=UNSAVED_PREFIX)  # 0o700: no other user can swap it
    return save_result(result, OutputFolder(folder, "{seed}-{prompt}"), format="png")


def is_unsaved(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is an image `keep_unsaved` kept, not one saved where the user asked."""
    parent = Path(path).parent
    return parent.name.startswith(UNSAVED_PREFIX) and parent.parent == Path(tempfile.gettempdir())
