"""Offline jobs over BEIR-layout datasets: seed an index, evaluate through the gateway, progress."""
