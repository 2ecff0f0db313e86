"""Content identity: one candidate id for the same target however often, and in whatever case, it is met."""
from __future__ import annotations

import hashlib

from judgemine.transforms.common.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageError, check, resolve
from judgemine.transforms.common.text import normalise_text


def image_digest(image: str, image_root: str = "", read: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """sha256 of the image bytes where readable (and `read`), else of the path: the same picture is one
    candidate. Shares `images.check`'s per-process cache with ingest's validation (same arguments), so an
    image is read and decoded once."""
    if not image:
        return ""
    try:
        if read:
            return "bytes:" + check(image, image_root, max_pixels, max_bytes).sha256
    except ImageError:
        pass
    try:
        return "path:" + resolve(image, image_root)
    except ImageError:
        return "path:" + image


def content_id(text: str, image: str, image_root: str = "", read_images: bool = True,
               max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The id of a (text, image) record in the candidate id space."""
    payload = normalise_text(text) + "\x00" + image_digest(image, image_root, read_images, max_pixels, max_bytes)
    return "c" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def payload_id(text: str, image: str, image_root: str = "", read_images: bool = True,
               max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """What a model reads of a (text, image) side, exactly: the text as given (no case folding, no whitespace
    collapsing) and the image's bytes. The judge's score-cache keys are built from it, so two texts that one
    candidate id stands for never share a score (docs/mining.md, "What the score cache keys")."""
    payload = text + "\x00" + image_digest(image, image_root, read_images, max_pixels, max_bytes)
    return "p" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]
