"""Arcano Tools: a Reflex full-stack web app."""
