"""Visualisation: overlays, videos, attention maps, plots (pure functions)."""
