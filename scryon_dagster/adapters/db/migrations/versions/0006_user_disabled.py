"""A user can be disabled: the HTTP API refuses a disabled user's requests (403 ``auth_disabled``)
whatever credentials they carry; their calls and artifacts stay until deleted.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled boolean NOT NULL DEFAULT false;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
