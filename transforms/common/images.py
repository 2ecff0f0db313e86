"""Image access for every stage: resolved against the image root, read through Beam's FileSystems (local,
gs://, s3://), checked, and converted to RGB the same way everywhere.

A row whose image cannot be used becomes a rejects row with one of these reasons; nothing else is lost:
  image_outside_root, missing_image, not_a_regular_file, empty_image_file, unreadable_image, image_too_large.
With an image root, the root is a boundary: every path, relative or absolute, symlinks resolved, must stay
inside it (a URI under a remote root by its scheme and prefix), checked before the file is touched, so a
reject never tells whether a path outside exists. Reads are bounded (`max_bytes`) before decoding, and only
regular files are opened (a device or FIFO is refused unread).
Conversions, documented and tested: EXIF orientation is applied; palette, greyscale and CMYK images become
RGB; transparency (PNG/GIF alpha) is composited on white; an animated GIF contributes its first frame.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import posixpath
import re
import stat
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 64 * 2**20
FILE_SCHEME = "file://"


class ImageError(ValueError):
    """An image that cannot be used; the message is the rejects reason."""


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    width: int
    height: int


def resolve(path: str, root: str) -> str:
    """The location to read `path` from (paths in the data stay as written: relative, as the official data has
    them). With a root, anything that would leave it is refused as image_outside_root."""
    path, root = _local(path), _local(root)
    if not root:
        return path
    if "://" in root:
        return _inside_remote(path, root.rstrip("/"))
    if "://" in path:
        raise ImageError(f"image_outside_root: {path}")
    real, real_root = os.path.realpath(os.path.join(root, path)), os.path.realpath(root)
    if os.path.commonpath([real, real_root]) != real_root:
        raise ImageError(f"image_outside_root: {path}")
    return real


def _local(path: str) -> str:
    return path[len(FILE_SCHEME):] if path.startswith(FILE_SCHEME) else path


def _inside_remote(path: str, root: str) -> str:
    if "://" in path:
        rest = path[len(root) + 1:] if path.startswith(root + "/") else None
    else:
        rest = None if path.startswith("/") else path
    normal = posixpath.normpath(rest) if rest else ""
    if not normal or normal == ".." or normal.startswith("../") or normal.startswith("/"):
        raise ImageError(f"image_outside_root: {path}")
    return root + "/" + normal


def _open(path: str) -> IO[bytes]:
    """Beam's FileSystems (local, gs://, s3://); plain local files where Beam is not installed (the GPU
    benchmark machine)."""
    try:
        from apache_beam.io.filesystems import FileSystems
    except ImportError:
        return open(path, "rb")
    return FileSystems.open(path, compression_type="uncompressed")


def read_bytes(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes, at most `max_bytes` of them read: a larger file is refused, a local one from its size
    before it is opened, as is anything local that is not a regular file."""
    if "://" not in path:
        try:
            info = os.stat(path)
        except OSError as e:
            raise ImageError(f"missing_image: {path}") from e
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"not_a_regular_file: {path}")
        if info.st_size > max_bytes:
            raise ImageError(f"image_too_large: {path} has {info.st_size} bytes, more than {max_bytes}")
    try:
        with _open(path) as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ImageError(f"missing_image: {path}") from e
    except Exception as e:  # remote filesystems raise their own types for a missing object
        raise ImageError(f"missing_image: {path} ({type(e).__name__})") from e
    if not data:
        raise ImageError(f"empty_image_file: {path}")
    if len(data) > max_bytes:
        raise ImageError(f"image_too_large: {path} has more than {max_bytes} bytes")
    return data


def to_rgb(image: Image.Image) -> Image.Image:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def opened(data: bytes, path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Fully decoded in its own mode, or an ImageError naming why not. The size is checked from the header first,
    so a decompression bomb is refused before it is decoded."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(f"image_too_large: {width}x{height} pixels exceeds {max_pixels}")
        image.seek(0)
        image.load()
        return image
    except ImageError:
        raise
    except Image.DecompressionBombError as e:  # Pillow's own guard, met before ours for the largest images
        raise ImageError(f"image_too_large: {path} ({e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        detail = re.sub(r" <[^>]* at 0x[0-9a-f]+>", "", str(e))  # PIL names the buffer by address: not reproducible
        raise ImageError(f"unreadable_image: {path} ({type(e).__name__}: {detail})") from e


def decode(data: bytes, path: str, max_pixels: int = DEFAULT_MAX_PIXELS, fit: ImageFit | None = None
           ) -> Image.Image:
    """RGB, fitted to what the model uses before the conversion where the mode allows (a 7000x7000 RGBA picture
    is composited on white at the model's size, not its own: four full-size copies less)."""
    image = opened(data, path, max_pixels)
    if fit is not None and image.mode in RESIZABLE:
        return to_rgb(fit.apply(image))
    rgb = to_rgb(image)
    return fit.apply(rgb) if fit is not None else rgb


RESIZABLE = ("RGB", "RGBA", "L", "LA")  # modes Pillow resamples bicubically (with alpha premultiplied)


@functools.lru_cache(maxsize=8192)
def check(path: str, root: str, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
          ) -> ImageInfo:
    """Reads, decodes and hashes one image (cached per process: a target met twice is read once). Decoded only
    to prove it decodes: not converted (the conversion of a huge picture is four copies of it)."""
    full = resolve(path, root)
    data = read_bytes(full, max_bytes)
    image = opened(data, full, max_pixels)
    return ImageInfo(hashlib.sha256(data).hexdigest(), image.width, image.height)


def disk_identity(full: str) -> list[int]:
    """What says a resolved image file is unchanged without reading it: [size, mtime_ns, ctime_ns, inode] on a
    local disk (ctime cannot be set from user space), [size] on an object store."""
    if "://" in full:
        from apache_beam.io.filesystems import FileSystems
        return [FileSystems.match([full])[0].metadata_list[0].size_in_bytes]
    st = os.stat(full)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


@dataclass(frozen=True)
class ImageFit:
    """The largest image a model can use, from its folder's image processor: a Qwen2-VL-family processor keeps at
    most `max_pixels` (it resizes anything larger down to that), a CLIP-style one resizes the shortest edge to
    `short_edge`. A decoded image above that is downscaled before it is processed or cached (to max_pixels, or to
    twice the short edge, bicubic, aspect kept), so one huge picture costs what the model uses, not its size.
    Images within it are untouched (the model's processor sees exactly what it saw before); an image above it is
    resampled twice, a difference in the last bits. A processor judgemine does not know keeps the full image."""
    max_pixels: int = 0
    short_edge: int = 0

    def apply(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        scale = 1.0
        if self.max_pixels and w * h > self.max_pixels:
            scale = (self.max_pixels / (w * h)) ** 0.5
        if self.short_edge and min(w, h) > 2 * self.short_edge:
            scale = min(scale, 2 * self.short_edge / min(w, h))
        if scale >= 1.0:
            return image
        return image.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.BICUBIC)


NO_FIT = ImageFit()


def image_fit(model_path: str) -> ImageFit:
    """What `model_path`'s image processor keeps (preprocessor_config.json); NO_FIT when it is not known."""
    try:
        with open(os.path.join(model_path, "preprocessor_config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return NO_FIT
    kind, size = str(config.get("image_processor_type", "")), config.get("size") or {}
    if kind.startswith("Qwen2"):  # size.longest_edge is a pixel count there (max_pixels in older configs)
        return ImageFit(max_pixels=int(config.get("max_pixels") or size.get("longest_edge") or 0))
    if kind.startswith(("CLIP", "Siglip")):
        return ImageFit(short_edge=int(size.get("shortest_edge") or size.get("height") or 0))
    return NO_FIT


def load(path: str, root: str, max_pixels: int = DEFAULT_MAX_PIXELS, fit: ImageFit = NO_FIT,
         max_bytes: int = DEFAULT_MAX_BYTES) -> Image.Image:
    """An image as a model gets it, under the run's limits (--max-image-pixels, --max-image-bytes): the limits
    ingest accepted it under, so no later stage refuses what ingest let in."""
    full = resolve(path, root)
    return decode(read_bytes(full, max_bytes), full, max_pixels, fit)


DEFAULT_CACHE_BYTES = 512 * 2**20


class DecodedImages:
    """A worker's cache of decoded images for the judges, bounded by bytes (RGB: 3 a pixel): a query's image
    serves its K+1 pairs, a popular candidate many queries. Images are fitted to the model first (ImageFit).
    `decodes` counts the reads that missed."""

    def __init__(self, root: str, max_bytes: int = DEFAULT_CACHE_BYTES, fit: ImageFit = NO_FIT,
                 limits: tuple[int, int] = (DEFAULT_MAX_PIXELS, DEFAULT_MAX_BYTES)) -> None:
        self.root, self.max_bytes, self.fit, self.limits = root, max_bytes, fit, limits
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self.bytes = 0
        self.decodes = 0

    def get(self, path: str) -> Image.Image:
        if path in self._images:
            self._images.move_to_end(path)
            return self._images[path]
        self.decodes += 1
        image = load(path, self.root, self.limits[0], self.fit, self.limits[1])
        self._images[path] = image
        self.bytes += _size(image)
        while self.bytes > self.max_bytes and len(self._images) > 1:
            _, dropped = self._images.popitem(last=False)
            self.bytes -= _size(dropped)
        return image


def _size(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())
