"""Adapters: MongoDB, channels, views, Kafka handlers."""
