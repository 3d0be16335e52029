"""Offline jobs the commands run: seed an index, evaluate through the gateway, train from logs."""
