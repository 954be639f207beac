"""The domain: accounts, tokens, tenancy. Knows nothing of HTTP."""
