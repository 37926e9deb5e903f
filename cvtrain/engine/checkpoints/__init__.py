"""Checkpoints, in one place: `writing` (atomic writes, stale temporaries; `write_failure` words a failed write),
`reading` (loaded with weights_only=True; a file that is not a checkpoint said in one message), `training` (what a
fit run stores and resumes from, RNG states included), `weights` (into a built network, or a message naming what
differs) and `restore` (a checkpoint plus the command line's overrides -> what eval, predict and export need)."""
