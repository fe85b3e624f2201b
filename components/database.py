"""PreviewDatabase: a database branch per PR, as a Pulumi dynamic provider over prenv.db.

The provider is serialized by Pulumi (dill) and run in a separate process, so it holds no state and captures nothing
unpicklable: every method opens its own connection from the inputs it is given. The class lives in an importable
module, so dill stores it by reference and the provider process imports this same code. prenv.db (and psycopg with
it) is imported by the methods that use it: only the provider's process needs it, not the program declaring the
component.

The password is a ``pulumi_random.RandomPassword`` (secret), an input the provider sets when it creates the role; the
branch's ``password`` output is the password the role was created with, and the URL is built from it. A later change of
the input alone does not rotate it: a stack whose branch was created by an older prenv (which generated the password
inside the provider) keeps that password, and its app keeps working, until the branch is replaced. The admin DSN is a
secret input. Neither is ever logged or put in an error message.

A failure reaches the driver only as text in pulumi's diagnostics, so the provider raises the safe message with the
retry decision encoded in it (``prenv.errors.encode``); the gateway decodes it, and a PostgreSQL outage stays
temporary on the far side of the pulumi process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from prenv.errors import DatabaseError, encode

_REPLACE_ON = ("name", "template", "seed_sql")


class PostgresBranchProvider(ResourceProvider):
    """CRUD of one database branch. Inputs: admin_dsn (secret), name, template, seed_sql, password (secret)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        from prenv import db

        password = props.get("password")
        if not password:
            raise Exception("the database branch needs a password input (a RandomPassword's result)")
        branch = _run(
            db.create_branch,
            props["admin_dsn"],
            props["name"],
            password,
            template=props.get("template"),
            seed_sql=props.get("seed_sql"),
        )
        outs = {**props, "role": branch.role, "host": branch.host, "port": branch.port, "password": password}
        return CreateResult(id_=branch.database, outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in _REPLACE_ON if olds.get(k) != news.get(k)]
        changes = bool(replaces) or olds.get("admin_dsn") != news.get("admin_dsn")
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Only the admin DSN can change in place (e.g. a rotated admin password): keep the branch and its password.
        from prenv import db

        host, port = db.server_of(news["admin_dsn"])
        return UpdateResult(outs={**olds, **news, "host": host, "port": port, "password": olds["password"]})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from prenv import db

        _run(db.drop_branch, props["admin_dsn"], props["name"])


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call into prenv.db, re-raising its errors as plain exceptions carrying only the safe message and the encoded
    retry decision (pulumi passes the message on, not the exception)."""
    try:
        return fn(*args, **kwargs)
    except DatabaseError as e:
        raise Exception(encode(e)) from None


class _Branch(pulumi.dynamic.Resource):
    role: pulumi.Output[str]
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    password: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        outputs = {"role": None, "host": None, "port": None}
        super().__init__(PostgresBranchProvider(), name, {**props, **outputs}, opts)


@dataclass(frozen=True)
class PreviewDatabaseArgs:
    admin_dsn: pulumi.Input[str]
    database: str  # from prenv.naming.database(): the database and role name
    template: str | None = None
    seed_sql: str | None = None
    app_host: str | None = None  # host the app connects to, when it differs from the admin DSN's
    app_port: int | None = None


class PreviewDatabase(pulumi.ComponentResource):
    """One PR's database and role; ``url`` is the app's DATABASE_URL (a secret)."""

    database: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: PreviewDatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("prenv:database:PreviewDatabase", name, None, opts)
        # Letters and digits only: the password goes into a URL and a SQL literal (both quoted anyway).
        password = pulumi_random.RandomPassword(
            f"{name}-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        branch = _Branch(
            f"{name}-branch",
            {
                "admin_dsn": pulumi.Output.secret(args.admin_dsn),
                "name": args.database,
                "template": args.template,
                "seed_sql": args.seed_sql,
                "password": password.result,
            },
            pulumi.ResourceOptions(parent=self, additional_secret_outputs=["password", "admin_dsn"]),
        )
        self.database = pulumi.Output.from_input(args.database)
        self.url = pulumi.Output.secret(
            pulumi.Output.all(branch.role, branch.password, branch.host, branch.port).apply(
                lambda a: _url(a[0], a[1], args.app_host or a[2], args.app_port or a[3], args.database)
            )
        )
        self.register_outputs({"database": self.database, "url": self.url})


def _url(role: str, password: str, host: str, port: int, database: str) -> str:
    from urllib.parse import quote

    return f"postgresql://{quote(role)}:{quote(password, safe='')}@{host}:{port}/{quote(database)}"
