"""Copies the real photos that ship inside scikit-image and scikit-learn into images/ (git-ignored), where the
multimodal sample's pairs point. No network: both packages carry these files."""
from __future__ import annotations

import os
import shutil
import sys

SKIMAGE = ["astronaut.png", "brick.png", "camera.png", "chelsea.png", "chessboard_GRAY.png", "chessboard_RGB.png",
           "clock_motion.png", "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "horse.png",
           "hubble_deep_field.jpg", "logo.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
           "no_time_for_that_tiny.gif", "page.png", "retina.jpg", "rocket.jpg"]
SKLEARN = ["china.jpg", "flower.jpg"]


def copy_images(destination: str) -> list[str]:
    import skimage
    import sklearn
    sources = [os.path.join(os.path.dirname(skimage.__file__), "data", f) for f in SKIMAGE]
    sources += [os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images", f) for f in SKLEARN]
    os.makedirs(destination, exist_ok=True)
    for src in sources:
        shutil.copyfile(src, os.path.join(destination, os.path.basename(src)))
    return sorted(os.listdir(destination))


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    print(len(copy_images(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "images"))), "images")
