"""Widgets of the rmtui app."""
