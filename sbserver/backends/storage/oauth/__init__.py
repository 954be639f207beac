"""OAuth sign-in providers configured per app (client ids, sealed client secrets, endpoints)."""
