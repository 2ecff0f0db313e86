"""Reusable Beam PTransforms, DoFns and ModelHandlers of the judgemine stages."""
