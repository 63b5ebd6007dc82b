"""Robust image loading for the region extractors.

:func:`load_image` turns a path, a PIL image or a numpy array into an RGB ``uint8`` array in the
orientation a viewer shows (EXIF orientation applied), plus notes on what was converted. Every failure
to read an image raises :class:`ImageError` (a ``ValueError``) whose message names the source and the
reason, so a batch job can catch it per image and list what failed.

Conversions (recorded in ``LoadedImage.flags["converted_from"]``):

* ``L`` / ``1`` (grayscale, bilevel), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, palette ``P`` without
  transparency: PIL's conversion to ``RGB``. CMYK uses PIL's plain formula; embedded ICC profiles are
  not applied.
* Images with alpha (``RGBA``, ``LA``, ``PA``, palette with a transparency entry): **composited on a
  white background** (``flags["alpha"] = "composited_on_white"``). Transparent pixels often carry
  arbitrary (frequently black) colour values, so dropping alpha could show garbage; white is the
  usual page background of transparent product photos and logos.
* 16-bit grayscale (``I;16``, ``I;16B``, ``I;16L``, 16-bit PNG): full-range linear scaling
  ``v * 255 / 65535`` (rounded). 32-bit integer ``I``: as-is when the values fit in 0..255, full
  16-bit scaling when they fit in 0..65535, otherwise min–max scaling. Float ``F``: ``v * 255`` when
  the values lie in [0, 1], otherwise min–max scaling.
* Multi-frame files (GIF, TIFF): the first frame (``flags["n_frames"]``).

Size limit: images of more than :data:`MAX_IMAGE_PIXELS` pixels (400 million, i.e. 20,000 × 20,000)
are refused with an :class:`ImageError` before they are decoded. PIL's own decompression-bomb guard
(which refuses at about 179 million pixels by default) is lifted for the duration of the open call only
and replaced by this limit; the decoded RGB array of an image at the limit takes 1.2 GB.
"""
from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import numpy as np

__all__ = ["ImageError", "LoadedImage", "load_image", "MAX_IMAGE_PIXELS", "ImageSource"]

#: Largest image accepted, in pixels (20,000 × 20,000).
MAX_IMAGE_PIXELS: int = 20_000 * 20_000

#: What :func:`load_image` accepts: ``str | os.PathLike | PIL.Image.Image | np.ndarray``.
ImageSource = Any

_PIL_LIMIT_LOCK = threading.Lock()


class ImageError(ValueError):
    """An image could not be read. ``source`` names the file (or the in-memory object)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


@dataclass
class LoadedImage:
    """A decoded image.

    Attributes:
        array: ``uint8`` array of shape ``[H, W, 3]`` (RGB), C-contiguous.
        size: ``(width, height)`` of ``array`` — after the EXIF orientation is applied, so for a photo
            whose EXIF orientation is 6 or 8 it is the stored size with the sides swapped.
        source: the path, or a short description of an in-memory image.
        flags: notes such as ``{"converted_from": "CMYK"}``, ``{"exif_orientation": 6}``,
            ``{"alpha": "composited_on_white"}``, ``{"n_frames": 3}``.
    """

    array: np.ndarray
    size: Tuple[int, int]
    source: str
    flags: Dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]


def load_image(src: ImageSource) -> LoadedImage:
    """Load one image as RGB ``uint8``.

    Args:
        src: a file path (``str`` / ``os.PathLike``), a ``PIL.Image.Image`` (its EXIF orientation, if
            any, is applied), or a numpy array of shape ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` (RGB)
            or ``[H, W, 4]`` (RGBA), dtype ``uint8``, ``uint16``, ``bool``, another integer type, or
            float (values in [0, 1], or else in [0, 255]). Channels-first arrays are refused.

    Returns:
        :class:`LoadedImage` with ``array`` ``[H, W, 3]`` ``uint8`` and ``size == (W, H)``.

    Raises:
        ImageError: missing, empty, unreadable, truncated or non-image files; images above
            :data:`MAX_IMAGE_PIXELS`; arrays of unsupported shape, dtype or with NaN/inf values.
    """
    if isinstance(src, (str, os.PathLike)):
        return _load_path(os.fspath(src))
    if isinstance(src, np.ndarray):
        return _load_array(src, f"<array shape={tuple(src.shape)} dtype={src.dtype}>")
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - pillow is a dependency of the vision extra
        raise ImportError("loading images needs pillow: pip install pillow") from e
    if isinstance(src, Image.Image):
        desc = f"<PIL image mode={src.mode} size={src.size[0]}x{src.size[1]}>"
        return _from_pil(src, desc)
    if hasattr(src, "__array__") and hasattr(src, "shape"):  # e.g. a CPU torch tensor in HWC layout
        arr = np.asarray(src)
        return _load_array(arr, f"<{type(src).__name__} shape={tuple(arr.shape)} dtype={arr.dtype}>")
    raise ImageError(repr(src)[:80], f"unsupported image source type {type(src).__name__}; "
                     "expected a path, a PIL image or a numpy array")


# ----------------------------------------------------------------------------------------- files

def _load_path(path: str) -> LoadedImage:
    from PIL import Image, UnidentifiedImageError

    if not os.path.exists(path):
        raise ImageError(path, "file not found")
    if os.path.isdir(path):
        raise ImageError(path, "is a directory, not an image file")
    try:
        n_bytes = os.path.getsize(path)
    except OSError as e:
        raise ImageError(path, f"cannot stat file ({e})") from e
    if n_bytes == 0:
        raise ImageError(path, "file is empty (0 bytes)")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise ImageError(path, f"cannot read file ({e.strerror or e})") from e

    try:
        im = _open_unbounded(io.BytesIO(data))
    except UnidentifiedImageError:
        head = data[:16]
        raise ImageError(path, f"not a recognised image format ({n_bytes} bytes, starting {head!r})") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types on malformed headers
        raise ImageError(path, f"corrupt image header ({type(e).__name__}: {e})") from e
    _check_size(im.size, path, f" ({im.format or 'image'})")
    try:
        im.load()
    except OSError as e:
        msg = str(e)
        if "truncated" in msg:
            reason = f"truncated {im.format or 'image'} file ({n_bytes} bytes): {msg}"
        else:
            reason = f"corrupt {im.format or 'image'} data: {msg}"
        raise ImageError(path, reason) from e
    except Exception as e:  # noqa: BLE001 - e.g. SyntaxError / ValueError from plugin decoders
        raise ImageError(path, f"corrupt {im.format or 'image'} data ({type(e).__name__}: {e})") from e
    return _from_pil(im, path)


def _open_unbounded(fp: io.BytesIO) -> Any:
    """``Image.open`` with PIL's decompression-bomb check replaced by :func:`_check_size`.

    ``Image.MAX_IMAGE_PIXELS`` is a process-wide setting; it is lifted only while the header is read,
    under a lock, and restored afterwards. Nothing is decoded here (PIL decodes lazily).
    """
    from PIL import Image

    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(fp)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_size(size: Tuple[int, int], source: str, what: str = "") -> None:
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ImageError(source, f"image has no pixels (size {w}x{h}){what}")
    if w * h > MAX_IMAGE_PIXELS:
        raise ImageError(
            source,
            f"image is {w}x{h} = {w * h:,} pixels{what}, above the limit of {MAX_IMAGE_PIXELS:,} "
            "pixels (20000x20000); downscale it first",
        )


# ---------------------------------------------------------------------------------- PIL images

def _from_pil(im: Any, source: str) -> LoadedImage:
    from PIL import Image, ImageOps

    flags: Dict[str, Any] = {}
    _check_size(im.size, source)
    n_frames = getattr(im, "n_frames", 1)
    if n_frames and n_frames > 1:
        flags["n_frames"] = int(n_frames)
        try:
            im.seek(0)
        except EOFError:  # pragma: no cover
            pass

    try:
        orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - malformed EXIF blocks
        orientation = 1
    if orientation != 1:
        try:
            transposed = ImageOps.exif_transpose(im)
        except Exception as e:  # noqa: BLE001 - malformed EXIF: keep the stored orientation
            flags["exif_error"] = f"{type(e).__name__}: {e}"
        else:
            if transposed is not None:
                im = transposed
            flags["exif_orientation"] = orientation

    mode = im.mode
    try:
        if mode == "RGB":
            arr = np.asarray(im, dtype=np.uint8)
        elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
            flags["converted_from"] = mode
            kind = "float" if mode == "F" else ("int" if mode == "I" else "uint16")
            arr = _gray_to_rgb(_scale_to_uint8(np.asarray(im), kind))
        elif mode == "P" and "transparency" in im.info:
            flags["converted_from"] = "P"
            arr = _composite_on_white(np.asarray(im.convert("RGBA")), flags)
        elif mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            flags["converted_from"] = mode
            rgba = im if mode == "RGBA" else im.convert("RGBA")
            arr = _composite_on_white(np.asarray(rgba), flags)
        elif mode in ("RGBX",):
            flags["converted_from"] = mode
            arr = np.asarray(im.convert("RGB"))
        else:  # L, 1, P, CMYK, YCbCr, LAB, HSV, ...
            flags["converted_from"] = mode
            arr = np.asarray(im.convert("RGB"))
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ImageError(source, f"cannot convert image mode {mode!r} to RGB ({type(e).__name__}: {e})") from e

    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if not arr.flags.writeable:  # arrays backed by PIL's buffer are read-only; torch wants writable ones
        arr = arr.copy()
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(source, f"conversion of mode {mode!r} gave shape {arr.shape}, expected HxWx3")
    h, w = arr.shape[:2]
    return LoadedImage(array=arr, size=(w, h), source=source, flags=flags)


# --------------------------------------------------------------------------------------- arrays

def _load_array(arr: np.ndarray, source: str) -> LoadedImage:
    flags: Dict[str, Any] = {}
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4):
        raise ImageError(source, "arrays must be channels-last (HxWxC); this looks channels-first (CxHxW)")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(source, "expected an array of shape HxW, HxWx1, HxWx3 or HxWx4")
    h, w = arr.shape[:2]
    _check_size((w, h), source)

    if arr.dtype == np.uint8:
        u8 = arr
    elif arr.dtype == np.bool_:
        u8 = arr.astype(np.uint8) * 255
        flags["converted_from"] = "bool"
    elif np.issubdtype(arr.dtype, np.integer):
        u8 = _scale_to_uint8(arr, "uint16" if arr.dtype == np.uint16 else "int")
        flags["converted_from"] = str(arr.dtype)
    elif np.issubdtype(arr.dtype, np.floating):
        a = arr.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageError(source, "float array contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            u8 = np.rint(a * 255.0).astype(np.uint8)
        elif lo >= 0.0 and hi <= 255.0:
            u8 = np.rint(a).astype(np.uint8)
        else:
            raise ImageError(source, f"float array values span [{lo:g}, {hi:g}]; expected [0, 1] or [0, 255]")
        flags["converted_from"] = str(arr.dtype)
    else:
        raise ImageError(source, f"unsupported array dtype {arr.dtype}")

    if u8.ndim == 2:
        flags.setdefault("converted_from", "L")
        rgb = _gray_to_rgb(u8)
    elif u8.shape[2] == 4:
        flags["converted_from"] = "RGBA" if arr.dtype == np.uint8 else flags["converted_from"] + "/RGBA"
        rgb = _composite_on_white(u8, flags)
    else:
        rgb = u8
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if not rgb.flags.writeable:
        rgb = rgb.copy()
    return LoadedImage(array=rgb, size=(w, h), source=source, flags=flags)


# -------------------------------------------------------------------------------------- helpers

def _scale_to_uint8(a: np.ndarray, kind: str) -> np.ndarray:
    """Map a single-channel (or integer multi-channel) image to uint8 (see the module docstring).

    Args:
        a: the values.
        kind: ``"uint16"`` (full-range 16-bit scaling), ``"int"`` (as-is if in 0..255, 16-bit scaling
            if in 0..65535, else min–max) or ``"float"`` (``v * 255`` if in [0, 1], else min–max).
    """
    a = a.astype(np.float64)
    if kind == "uint16":
        return np.rint(a * (255.0 / 65535.0)).astype(np.uint8)
    if a.size == 0:
        return a.astype(np.uint8)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if kind == "float":
        if lo >= 0.0 and hi <= 1.0:
            return np.rint(a * 255.0).astype(np.uint8)
    elif lo >= 0 and hi <= 255:
        return a.astype(np.uint8)
    elif lo >= 0 and hi <= 65535:
        return np.rint(a * (255.0 / 65535.0)).astype(np.uint8)
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _gray_to_rgb(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[:, :, None], 3, axis=2)


def _composite_on_white(rgba: np.ndarray, flags: Dict[str, Any]) -> np.ndarray:
    """Alpha-composite ``[H, W, 4]`` uint8 RGBA over white; records the choice in ``flags``."""
    rgb = rgba[:, :, :3].astype(np.float32)
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    flags["alpha"] = "composited_on_white"
    out = rgb * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
