"""judgemine: hard-negative mining for multimodal embedding training with an MLLM as the judge (UniME-V2).

The repository's top-level folders are this package's subpackages once installed (setup.py maps them):
`judgemine.pipelines` (stages, runner, CLI), `judgemine.transforms` (DoFns, model handlers, backends, pure
logic), `judgemine.schemas` (artifact schemas and readers), `judgemine.testing` (tiny models for tests and
demos). docs/ARCHITECTURE.md is the map; docs/SPEC.md the method.
"""
__version__ = "0.2.0"
