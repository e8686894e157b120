"""The bundled local dashboard: TofuPilot's station API (spec/api.md), served by
uvicorn, stored through SQLAlchemy (SQLite by default, PostgreSQL with `--db`).

- `app.create_app(Settings)`: the FastAPI application for one data folder (tests
  inject a clock and a folder through `Settings`).
- `runner`: `serve` (foreground, clean stop on SIGTERM/SIGINT), `ServerThread` (a
  background server on a free loopback port), `bind`.
- `admin`: set up a data folder, mint admin keys; `defaults`: what `server init`
  saves so `--data DIR` alone finds the server.
- `routes/`: one module per resource family; `schemas`: every request and response
  body; `db` + `migrations/`: tables and their Alembic history (shipped inside the
  package so an installed wheel migrates its own database).
"""
