"""Sinergi: the HTTP service."""
