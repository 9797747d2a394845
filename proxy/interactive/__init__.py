"""Steering from inside the chat: sessions, in-chat commands, loop detection."""
