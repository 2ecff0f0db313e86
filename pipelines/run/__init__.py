"""The run machinery every stage shares: the runner, the commit protocol (commit, artifacts, lock,
ownership), fingerprints, progress, the Stage declaration, interrupts and user errors."""
