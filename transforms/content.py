"""Content identity: one candidate id for the same target however often, and in whatever case, it is met."""
from __future__ import annotations

import functools
import hashlib

from apache_beam.io.filesystems import FileSystems

from transforms.text import normalise_text


@functools.lru_cache(maxsize=65536)
def image_digest(image: str) -> str:
    """sha256 of the image bytes where readable, else of the path: the same picture is one candidate."""
    if not image:
        return ""
    try:
        with FileSystems.open(image, compression_type="uncompressed") as f:
            h = hashlib.sha256()
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return "bytes:" + h.hexdigest()
    except (OSError, IOError, ValueError):
        return "path:" + image


def content_id(text: str, image: str, image_root: str = "") -> str:
    """The id of a (text, image) record in the candidate id space."""
    resolved = FileSystems.join(image_root, image) if image and image_root else image
    payload = normalise_text(text) + "\x00" + image_digest(resolved)
    return "c" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]
