"""Helpers for the test suite: not tests themselves, so pytest collects nothing here."""
