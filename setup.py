"""judgemine: hard-negative mining for multimodal embedding training with an MLLM as the judge (UniME-V2).

The repository root is the `judgemine` import package: its folders pipelines/, transforms/, schemas/ and
testing/ install as judgemine.pipelines, judgemine.transforms, ... so that installing claims one top-level
name. Also usable as Beam's `--setup_file`, so remote workers get the same package.
"""
from setuptools import find_packages, setup

SUBPACKAGES = ("pipelines", "transforms", "schemas", "testing")

setup(
    name="judgemine",
    version="0.2.0",
    description="Hard-negative mining with an MLLM as the judge, on Apache Beam",
    package_dir={"judgemine": "."},
    packages=["judgemine"] + [f"judgemine.{p}" for p in find_packages(include=[f"{s}*" for s in SUBPACKAGES])],
    python_requires=">=3.10",
    install_requires=[
        "apache-beam>=2.77,<3", "torch>=2.4", "transformers>=5.16.1,<5.20", "faiss-cpu>=1.8",
        "sentence-transformers>=5", "pyarrow", "numpy", "pillow", "pyyaml", "matplotlib",
    ],
    entry_points={"console_scripts": ["judgemine=judgemine.pipelines.cli.entry:main"]},
)
