"""Flask extensions, created unbound and attached in ``create_app``."""

import logging

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Database(SQLAlchemy):
    """Flask-SQLAlchemy, whose end-of-context clean-up survives a lost database.

    Ending a request (or a worker's batch) rolls its session back. If the server went away
    meanwhile (restarted, failed over) the rollback fails; uncaught, that failure comes
    after every error handler, so a page already rendered would become a bare 500, and the
    session would stay registered for the thread's next request. There is nothing left to
    roll back on a dead connection: the session is let go, the pool tests the connection
    before it is used again, and the failure is one log line.
    """

    def _teardown_session(self, exc: BaseException | None) -> None:
        from alertsvc.database import database_unavailable

        try:
            super()._teardown_session(exc)
        except SQLAlchemyError as error:
            self.session.registry.clear()
            if not database_unavailable(error):
                raise
            log.warning(
                "the database connection was lost before the session was closed: %s",
                (str(getattr(error, "orig", None) or error).strip().splitlines() or [""])[0],
            )


db = Database(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
login_manager = LoginManager()
