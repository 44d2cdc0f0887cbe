"""Groundwork: a consent-first organizing bot for grassroots civic groups."""
