"""A failed pulumi command judged: the provider's encoded decision wins, pulumi's own outage words count only where
no provider decided, and the summary people see carries neither markers nor secrets."""

from __future__ import annotations

from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from prenv.errors import DatabaseError, encode
from prenv.gateway.classify import classify, stack_error, summarize


def failed(diagnostics: str, stderr: str = "error: update failed\n") -> auto.CommandError:
    stdout = f"Updating (pr-7):\nDiagnostics:\n  pulumi-python:dynamic:Resource (env-database-branch):\n{diagnostics}"
    return auto.CommandError(CommandResult(stdout=stdout, stderr=stderr, code=255))


def provider_failure(err: DatabaseError) -> str:
    return f"    error: Exception calling application: {encode(err)}\n"


def test_a_temporary_provider_failure_is_temporary_with_its_delay() -> None:
    c = classify(failed(provider_failure(DatabaseError("PostgreSQL at db:5432 failed", temporary=True, delay=7))))
    assert (c.temporary, c.delay) == (True, 7.0)


def test_a_permanent_provider_failure_stays_permanent_even_when_its_words_say_timeout() -> None:
    err = DatabaseError('PostgreSQL at db:5432 refused: invalid value for parameter "statement_timeout" (22023)')
    c = classify(failed(provider_failure(err)))
    assert (c.temporary, c.delay) == (False, None)


def test_an_outage_pulumi_reports_itself_is_temporary_without_a_marker() -> None:
    line = "    error: configured Kubernetes cluster is unreachable: dial tcp 127.0.0.1:6443: connection refused\n"
    assert classify(failed(line)).temporary


def test_a_bad_configuration_is_permanent() -> None:
    assert not classify(failed("    error: invalid configuration: prenv:quota.cpu: 'lots'\n")).temporary


def test_progress_text_that_mentions_a_timeout_does_not_make_a_failure_temporary() -> None:
    e = failed(
        "    error: invalid configuration\n",
        stderr="~ Deployment updating [1/2] Waiting for app ReplicaSet (timeoutSeconds 600)\nerror: update failed\n",
    )
    assert not classify(e).temporary


def test_the_summary_carries_the_message_without_the_marker_or_a_secret() -> None:
    line = provider_failure(DatabaseError("cannot connect to postgresql://admin:hunter2@db/x", temporary=True))
    text = summarize(failed(line))
    assert "cannot connect to" in text
    assert "[prenv:" not in text
    assert "hunter2" not in text


def test_a_destroy_failure_is_judged_like_an_up_failure() -> None:
    permanent = stack_error("pr-7", "destroy", failed(provider_failure(DatabaseError("refused"))))
    assert not permanent.temporary
    assert str(permanent).startswith("pr-7: destroy failed: ")
    outage = stack_error("pr-7", "destroy", failed(provider_failure(DatabaseError("down", temporary=True, delay=3))))
    assert (outage.temporary, outage.delay) == (True, 3.0)


def test_a_step_may_override_the_judgement() -> None:
    err = stack_error("pr-7", "refresh", failed(provider_failure(DatabaseError("refused"))), temporary=True)
    assert err.temporary
