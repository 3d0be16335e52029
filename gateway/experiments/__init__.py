"""Online experiments: arms, their event log, the report and its pages (attached in app.py)."""
