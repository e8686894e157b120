"""Alembic migration environment, kept inside the package so an installed wheel can
migrate its own database (`tofu-tui server init` / `start`)."""
