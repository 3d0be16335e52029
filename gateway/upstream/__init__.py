"""The search cluster: the one HTTP client session to it, and which of its URLs to try first."""
