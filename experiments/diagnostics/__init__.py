"""Diagnostics: what a matcher reads (structure tests on annotated and synthetic scenes)."""
