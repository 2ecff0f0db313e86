"""The judgemine stages as Beam pipelines, the end-to-end run and the command line."""
