"""Content identity: one candidate id for the same target however often, and in whatever case, it is met."""
from __future__ import annotations

import hashlib

from transforms.images import ImageError, check, resolve
from transforms.text import normalise_text


def image_digest(image: str, image_root: str = "", read: bool = True) -> str:
    """sha256 of the image bytes where readable (and `read`), else of the path: the same picture is one
    candidate."""
    if not image:
        return ""
    try:
        if read:
            return "bytes:" + check(image, image_root).sha256
    except ImageError:
        pass
    try:
        return "path:" + resolve(image, image_root)
    except ImageError:
        return "path:" + image


def content_id(text: str, image: str, image_root: str = "", read_images: bool = True) -> str:
    """The id of a (text, image) record in the candidate id space."""
    payload = normalise_text(text) + "\x00" + image_digest(image, image_root, read_images)
    return "c" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]
