"""The response cache: exact-match answers from memory or Redis, identical requests coalesced."""
