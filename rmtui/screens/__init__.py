"""Screens of the rmtui app."""
