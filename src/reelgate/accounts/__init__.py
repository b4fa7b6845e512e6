"""Accounts: the embedded default's dev account (credits and admin come with issue 4)."""
