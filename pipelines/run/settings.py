"""The settings no one stage owns: the run's own (where it writes, on which device, whether to redo), which every
stage is given beside its own (pipelines/<stage>/settings.py), and the images' (declared with ingest's, which
checks them; embed and judge, which open the same images, are given them too)."""
from __future__ import annotations

from dataclasses import dataclass

from judgemine.transforms.common.devices import Device
from judgemine.transforms.common.options import above, at_least, setting


@dataclass(frozen=True)
class RunSettings:
    """Where the run writes, on which device, whether stages are redone, whether the report is written, how long
    silent workers are waited for."""
    output: str = setting("", (), "run directory: stages/, shards/, rejects/, manifest.json", group="run")
    device: Device = setting("auto", (), "torch device for the models", group="run")
    force: bool = setting(False, (), "rerun stages even when their artifacts are up to date", group="run")
    report: bool = setting(True, (), "write OUTPUT/report/index.html (judgemine report) at the end of run; "
                           "--no-report: off", group="run")
    worker_timeout: float = setting(60.0, (), "seconds a stage waits for its first worker to start, and for a worker "
                                    "that stopped reporting, before it fails (0: off; not on Dataflow, which watches "
                                    "its own workers)", group="run", range=at_least(0))


@dataclass(frozen=True)
class ImageSettings:
    """Where images are found and the limits they must pass (in ingest's section: ingest checks them)."""
    image_root: str = setting("", ("ingest",), "directory that relative image paths are resolved against",
                              group="ingest")
    max_image_pixels: int = setting(50_000_000, ("ingest",), "images with more pixels are rejected "
                                    "(image_too_large)", group="ingest", range=above(0))
    max_image_bytes: int = setting(64 * 2**20, ("ingest",), "image files larger than this many bytes are rejected "
                                   "unread (image_too_large)", group="ingest", range=above(0))
