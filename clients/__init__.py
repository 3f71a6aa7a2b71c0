"""Typed HTTP clients for partner systems (see :mod:`clients.sinergi`)."""
