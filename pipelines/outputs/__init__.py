"""What a run publishes and what is made from it: the manifest, the summary and health findings, the run's
rejects, derived notes, exports and the report."""
