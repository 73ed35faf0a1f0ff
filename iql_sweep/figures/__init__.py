"""Figures (matplotlib, PNG)."""
