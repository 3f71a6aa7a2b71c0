"""The region reference's data and its build script."""
