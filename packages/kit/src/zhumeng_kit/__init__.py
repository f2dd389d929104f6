"""The shared service kit: what every Zhumeng service needs, written once."""
