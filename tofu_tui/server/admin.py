"""Setting up a data folder: migrate the database, mint the first admin key, and save
the defaults (URL, key) the admin commands read when given only `--data DIR`."""

from __future__ import annotations

from pathlib import Path

from tofu_tui.server import db
from tofu_tui.server.defaults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    AdminDefaults,
    load_defaults,
    save_defaults,
)
from tofu_tui.server.keys import digest, display_prefix, new_api_key, new_id
from tofu_tui.server.migrate import upgrade
from tofu_tui.server.settings import Settings


def create_user_key(settings: Settings, name: str | None = None) -> str:
    """Migrate the database and add a user key (straight to the database)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            key = new_api_key("user")
            session.add(
                db.ApiKey(
                    id=new_id(), kind="user", station_id=None, key_hash=digest(key), prefix=display_prefix(key),
                    name=name, created_at=settings.now(), revoked_at=None,
                )
            )
            session.commit()
        return key
    finally:
        engine.dispose()


def init_data_dir(data_dir: Path, *, db_url: str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> tuple[str, str]:
    """Create the database and an admin key; save the defaults. Returns (key, url)."""
    settings = Settings(data_dir=data_dir, db_url=db_url)
    key = create_user_key(settings, name="init")
    url = f"http://{host}:{port}"
    previous = load_defaults(data_dir)
    save_defaults(data_dir, AdminDefaults(url=previous.url or url, api_key=key, db_url=db_url or previous.db_url))
    return key, previous.url or url
