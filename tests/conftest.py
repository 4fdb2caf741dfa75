"""Test harness: the suite runs on SQLite, and also on PostgreSQL when TEST_DATABASE_URL is set.

Every test that takes the ``app`` fixture runs once per database. The schema is built by
the Alembic migrations (never ``create_all``), and tables are emptied after each test.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="missive-tests-"))
os.environ.setdefault("MISSIVE_HUEY_DB", str(_TMP / "huey.db"))
os.environ.setdefault("MISSIVE_ARGON2_TIME_COST", "1")
os.environ.setdefault("MISSIVE_ARGON2_MEMORY_KIB", "1024")
os.environ.setdefault("MISSIVE_ARGON2_PARALLELISM", "1")
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_URL", None)

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app import create_app  # noqa: E402
from app.core.extensions import db  # noqa: E402
from app.core.worker import huey  # noqa: E402

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
TEST_PASSWORD = "correct-horse-battery"


def pytest_report_header(config):
    if PG_URL:
        return f"databases: SQLite and PostgreSQL ({PG_URL})"
    return "databases: SQLite only (set TEST_DATABASE_URL to also run on PostgreSQL)"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgresql`` need the real server; without it they are deselected
    and the run says so (CI always sets TEST_DATABASE_URL, so nothing is left out there)."""
    selected, deselected = [], []
    for item in items:
        on_sqlite = getattr(getattr(item, "callspec", None), "params", {}).get("_app") == "sqlite"
        postgresql_only = item.get_closest_marker("postgresql") is not None
        # PostgreSQL-only tests: all of them without the server, their SQLite run with it
        (deselected if postgresql_only and (not PG_URL or on_sqlite) else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
    if deselected and not PG_URL:
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"{len(deselected)} PostgreSQL-only tests deselected: TEST_DATABASE_URL unset"
            ),
            stacklevel=2,
        )


def _reset_postgresql(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def make_app(backend: str, workdir: Path, **overrides):
    """Build an application on a fresh, migrated database of the given kind."""
    if backend == "postgresql":
        _reset_postgresql(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{workdir / 'test.db'}"
    config = {
        "MISSIVE_ENV": "testing",
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url.replace("postgresql://", "postgresql+psycopg://", 1),
        "MISSIVE_STORAGE": str(workdir / "storage"),
        "MISSIVE_FORMS_DIRS": str(Path(__file__).parent / "fixtures" / "forms"),
        "SERVER_NAME": None,
        **overrides,
    }
    application = create_app(config)
    with application.app_context():
        upgrade()
    return application


@pytest.fixture(scope="session", params=BACKENDS)
def _app(request, tmp_path_factory):
    application = make_app(request.param, tmp_path_factory.mktemp(request.param))
    application.config["DB_BACKEND"] = request.param
    yield application
    with application.app_context():
        db.engine.dispose()


def _empty_tables(application) -> None:
    with application.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        if db.engine.dialect.name == "postgresql":
            db.session.execute(
                text(
                    "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
                )
            )
        else:
            db.session.execute(text("PRAGMA defer_foreign_keys = ON"))
            for table in tables:
                db.session.execute(text(f'DELETE FROM "{table}"'))
        db.session.commit()
        db.session.remove()


@pytest.fixture
def app(_app):
    """The application on a clean database (each test runs on every configured backend)."""
    huey.immediate = True
    _app.config["WTF_CSRF_ENABLED"] = True
    yield _app
    _empty_tables(_app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(app):
    """Create a user through the service layer; returns its e-mail."""
    from app.auth.services import create_user

    counter = {"n": 0}

    def factory(
        role: str = "agent",
        groups: list[str] | None = None,
        email: str | None = None,
        name: str | None = None,
        **kwargs,
    ) -> str:
        counter["n"] += 1
        email = email or f"agent{counter['n']}@example.test"
        with app.app_context():
            create_user(
                email=email,
                name=name or f"Agent {counter['n']}",
                password=TEST_PASSWORD,
                role=role,
                groups=groups or [],
                **kwargs,
            )
        return email

    return factory


_CSRF_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|'
    r'name="csrf_token" value="([^"]+)"'
)


def csrf_token(client, path: str = "/login") -> str:
    """Fetch a page and return the CSRF token of its first form."""
    html = client.get(path).get_data(as_text=True)
    match = _CSRF_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def login(client, email: str, password: str = TEST_PASSWORD):
    """Sign in through the real login form; returns the response."""
    token = csrf_token(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


@pytest.fixture
def api_token(app):
    """Issue a bearer token for an e-mail; returns the Authorization header dict."""
    from app.api.services import create_token
    from app.auth.services import find_user_by_email

    def factory(email: str) -> dict[str, str]:
        with app.app_context():
            _token, clear = create_token(find_user_by_email(email), name="test")
        return {"Authorization": f"Bearer {clear}"}

    return factory
