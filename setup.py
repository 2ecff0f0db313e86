"""judgemine: hard-negative mining for multimodal embedding training with an MLLM judge (UniME-V2).

Also usable as Beam's `--setup_file`, so remote workers get the same packages.
"""
from setuptools import find_packages, setup

setup(
    name="judgemine",
    version="0.1.0",
    description="Hard-negative mining with an MLLM as the judge, on Apache Beam",
    packages=find_packages(include=["pipelines", "pipelines.*", "transforms", "transforms.*",
                                    "schemas", "schemas.*"]),
    python_requires=">=3.10",
    install_requires=[
        "apache-beam>=2.77,<3", "torch>=2.4", "transformers>=5.16.1,<5.20", "faiss-cpu>=1.8",
        "sentence-transformers>=5", "pyarrow", "numpy", "pillow", "pyyaml",
    ],
    entry_points={"console_scripts": ["judgemine=pipelines.cli:main"]},
)
