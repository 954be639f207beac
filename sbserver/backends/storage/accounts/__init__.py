"""Accounts: tenants, bases, accounts, users and their passwords."""
