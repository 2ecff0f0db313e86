"""Image checks and conversions: every bad file has its reason, every odd format a documented conversion."""
from __future__ import annotations

import os

import pytest
from PIL import Image

from judgemine.transforms.common.images import DecodedImages, ImageError, ImageFit, check, image_fit, load, resolve


@pytest.mark.parametrize("path,reason", [
    ("bad/empty.png", "empty_image_file"),
    ("bad/corrupt.jpg", "unreadable_image"),
    ("bad/not_an_image.jpg", "unreadable_image"),
    ("bad/huge.png", "image_too_large"),
    ("images/does_not_exist.jpg", "missing_image"),
    ("../outside.jpg", "image_outside_root"),
    ("images/../../outside.jpg", "image_outside_root"),
])
def test_bad_images_have_reasons(image_root, path, reason):
    with pytest.raises(ImageError, match=f"^{reason}"):
        check(path, image_root)


def test_the_pixel_cap_is_a_setting(image_root):
    assert check("images/chelsea.png", image_root).width == 451
    with pytest.raises(ImageError, match="image_too_large: 451x300"):
        check("images/chelsea.png", image_root, max_pixels=100_000)


def test_alpha_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    img.putpixel((0, 0), (0, 0, 255, 0))  # fully transparent blue
    img.save(tmp_path / "a.png")
    rgb = load("a.png", str(tmp_path))
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255) and rgb.getpixel((1, 1)) == (255, 0, 0)


def test_real_rgba_logo_and_animated_gif_convert(image_root):
    assert load("images/logo.png", image_root).mode == "RGB"
    gif = load("images/no_time_for_that_tiny.gif", image_root)
    with Image.open(os.path.join(image_root, "images", "no_time_for_that_tiny.gif")) as raw:
        assert raw.n_frames > 1
        first = raw.convert("RGB")
    assert gif.mode == "RGB" and gif.tobytes() == first.tobytes()


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load("rot.jpg", str(tmp_path)).size == (20, 40)


def test_greyscale_becomes_rgb(image_root):
    assert load("images/camera.png", image_root).mode == "RGB"


def test_without_a_root_paths_are_kept_and_file_uris_read_locally():
    assert resolve("/data/a.jpg", "") == "/data/a.jpg"
    assert resolve("gs://bucket/a.jpg", "") == "gs://bucket/a.jpg"
    assert resolve("file:///data/a.jpg", "") == "/data/a.jpg"


def test_a_remote_root_admits_its_own_prefix_only():
    root = "s3://bucket/images"
    assert resolve("cats/a.jpg", root) == "s3://bucket/images/cats/a.jpg"
    assert resolve("s3://bucket/images/cats/a.jpg", root) == "s3://bucket/images/cats/a.jpg"
    for escaping in ("s3://bucket/other/a.jpg", "s3://bucket/imagesX/a.jpg", "gs://bucket/images/a.jpg",
                     "/etc/passwd", "../a.jpg", "s3://bucket/images/../secret.jpg"):
        with pytest.raises(ImageError, match="image_outside_root"):
            resolve(escaping, root)


def test_ingest_validation_and_hashing_decode_an_image_once(image_root):
    from judgemine.transforms.common.content import content_id
    from judgemine.transforms.ingest.records import ImagePolicy
    check.cache_clear()
    policy = ImagePolicy(image_root, max_pixels=10_000_000)
    policy.validate("images/coffee.png")
    content_id("A cup.", "images/coffee.png", image_root, True, policy.max_pixels)
    content_id("", "images/coffee.png", image_root, True, policy.max_pixels)
    assert check.cache_info().misses == 1 and check.cache_info().hits == 2


def test_images_are_fitted_to_what_the_model_uses_and_the_cache_is_bounded_by_bytes(tmp_path, tiny_clip, tiny_vlm):
    """A picture within the model's limit is untouched; a larger one is cut to it (a Qwen2-VL processor's pixel
    budget, twice a CLIP processor's short edge); the judge's decode cache never holds more bytes than its bound."""
    from PIL import Image
    assert image_fit(tiny_vlm) == ImageFit(max_pixels=12544) and image_fit(tiny_clip) == ImageFit(short_edge=32)
    assert image_fit(str(tmp_path)) == ImageFit()  # no processor config: nothing is cut
    small, wide = Image.new("RGB", (100, 60), "red"), Image.new("RGB", (4000, 1000), "blue")
    assert ImageFit(max_pixels=12544).apply(small) is small
    assert ImageFit(short_edge=32).apply(Image.new("RGB", (64, 64))).size == (64, 64)
    w, h = ImageFit(max_pixels=12544).apply(wide).size
    assert w * h <= 12544 and abs(w / h - 4) < 0.1
    assert ImageFit(short_edge=32).apply(wide).size == (256, 64)
    for i in range(6):
        Image.new("RGB", (400, 300), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
    cache = DecodedImages(str(tmp_path), max_bytes=3 * 400 * 300 * 3)
    for i in list(range(6)) + [5, 4]:
        cache.get(f"{i}.png")
        assert cache.bytes <= cache.max_bytes
    assert cache.decodes == 6  # the last three stayed cached
