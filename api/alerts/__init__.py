"""Recruitment reports and alerts (modus perekrutan ilegal), and the public warning list."""
