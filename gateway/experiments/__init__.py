"""Online experiments: arms, their event log, the report and its pages (hooked to the pipeline)."""
