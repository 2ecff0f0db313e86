"""The shards in the formats other trainers read: one module per format, listed here (`judgemine export
--format NAME`) or added by another distribution's `judgemine.exports` entry point; what they share
(streaming, k, fallback rows, the atomic write) is in base.py."""
from __future__ import annotations

from judgemine.pipelines.outputs.exports.base import Exporter, ExportOptions, ExportResult, run_export
from judgemine.pipelines.outputs.exports.batches import BatchesExport
from judgemine.pipelines.outputs.exports.flagembedding import FlagEmbeddingExport
from judgemine.pipelines.outputs.exports.reranker import ListwiseExport, PairwiseExport
from judgemine.pipelines.outputs.exports.sentence_transformers import SentenceTransformersExport
from judgemine.pipelines.outputs.exports.unime import UnimeExport
from judgemine.transforms.common.registry import Registry

EXPORTS: Registry[Exporter] = Registry("export format", "format", "export", "judgemine.exports",
                                       (UnimeExport, SentenceTransformersExport, FlagEmbeddingExport, PairwiseExport,
                                        ListwiseExport, BatchesExport))

__all__ = ["EXPORTS", "ExportOptions", "ExportResult", "Exporter", "run_export"]
