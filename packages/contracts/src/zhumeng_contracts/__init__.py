"""Zhumeng contracts: every event schema, the topic registry and the envelope.

This package holds no behaviour beyond (de)serialisation; services import it, never each other.
"""
