"""One row per rate-limited provider: the next free request slot, shared by every process.

Each process used to pace pyannoteAI requests on its own, so N batch runs at once sent N times the
provider's per-minute budget. Reserving slots in one row makes the budget fleet-wide.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE IF NOT EXISTS provider_request_slots (
    provider text PRIMARY KEY,
    next_slot timestamptz NOT NULL
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
