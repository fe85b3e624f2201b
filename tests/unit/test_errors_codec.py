"""The retry decision as text: what the database provider writes into its failure and the gateway reads back."""

from __future__ import annotations

import pytest

from prenv.errors import DatabaseError, RetryHint, StackOperationError, decode, encode, strip_hints


def test_a_temporary_error_survives_encoding_with_its_delay() -> None:
    text = encode(DatabaseError("cannot connect to PostgreSQL at db:5432", temporary=True, delay=5))
    assert text == "cannot connect to PostgreSQL at db:5432 [prenv:temporary delay=5]"
    assert decode(text) == RetryHint(temporary=True, delay=5.0)


def test_a_temporary_error_without_a_delay_leaves_the_delay_to_the_backoff() -> None:
    assert decode(encode(DatabaseError("template busy", temporary=True))) == RetryHint(temporary=True, delay=None)


def test_a_permanent_error_decodes_as_permanent_even_when_its_message_says_timeout() -> None:
    text = encode(DatabaseError("PostgreSQL at db:5432 refused: statement timeout must be positive (22023)"))
    assert decode(text) == RetryHint(temporary=False)


def test_a_fractional_delay_is_kept_to_the_millisecond() -> None:
    assert decode(encode(StackOperationError("pr-1", "x", temporary=True, delay=2.5))) == RetryHint(True, 2.5)
    assert decode(encode(StackOperationError("pr-1", "x", temporary=True, delay=0.0001))) == RetryHint(True, 0.0)


def test_a_multi_line_message_is_encoded_on_one_line_with_its_marker() -> None:
    text = encode(DatabaseError("first line\n  second line", temporary=True))
    assert "\n" not in text
    assert text.endswith("[prenv:temporary]")


def test_text_without_a_marker_carries_no_decision() -> None:
    assert decode("error: Exception calling application: connection refused") is None


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (["permanent", "temporary delay=3"], RetryHint(True, 3.0)),
        (["temporary delay=3", "temporary delay=10"], RetryHint(True, 10.0)),
        (["permanent", "permanent"], RetryHint(False)),
    ],
    ids=["one temporary among permanent ones", "the longest delay", "all permanent"],
)
def test_several_failures_in_one_run_are_temporary_when_any_is(kinds: list[str], expected: RetryHint) -> None:
    text = "\n".join(f"    error: Exception calling application: failure {i} [prenv:{k}]" for i, k in enumerate(kinds))
    assert decode(text) == expected


def test_stripping_removes_every_marker_and_keeps_the_message() -> None:
    text = "a: cannot connect [prenv:temporary delay=5]; b: refused [prenv:permanent]"
    assert strip_hints(text) == "a: cannot connect; b: refused"


def test_the_marker_adds_nothing_but_the_decision() -> None:
    err = DatabaseError("PostgreSQL at db:5432 refused: permission denied (42501)", delay=9)
    assert strip_hints(encode(err)) == str(err)


def test_a_marker_that_is_not_ours_is_left_alone() -> None:
    text = "error: [prenv:urgent] [prenv:temporary delay=abc]"
    assert decode(text) is None
    assert strip_hints(text) == text


def test_the_database_provider_fails_with_the_encoded_decision() -> None:
    from components.database import _run

    def outage() -> None:
        raise DatabaseError("cannot connect to PostgreSQL at 127.0.0.1:1: Connection refused", temporary=True)

    with pytest.raises(Exception) as e:
        _run(outage)
    assert type(e.value) is Exception, "only the message crosses the pulumi boundary, so it must carry everything"
    assert decode(str(e.value)) == RetryHint(temporary=True)
    assert e.value.__cause__ is None and e.value.__suppress_context__
