"""Database branching: one role and one database per PR on a shared PostgreSQL server.

Plain psycopg, usable from both sides of the pulumi boundary: the dynamic provider (components/database.py) runs it
inside pulumi, `prenv gc` and the bench call it directly. Failures are ``prenv.errors.DatabaseError``.
"""

from prenv.db.branch import (
    Branch,
    create_branch,
    database_exists,
    drop_branch,
    list_branches,
    role_exists,
    server_of,
)

__all__ = [
    "Branch",
    "create_branch",
    "database_exists",
    "drop_branch",
    "list_branches",
    "role_exists",
    "server_of",
]
