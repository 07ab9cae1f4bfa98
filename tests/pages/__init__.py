"""Helpers of the browser tests of the public pages (tests/test_pages.py)."""
