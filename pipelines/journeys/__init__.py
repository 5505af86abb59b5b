"""Journeys, funnels and attribution (CONTRACT section 8)."""
