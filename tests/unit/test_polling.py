"""The tests' one way of waiting: the first good result, or a failure that says what was seen."""

from __future__ import annotations

import itertools

import pytest

from tests.support.polling import wait_for


def test_the_first_truthy_result_is_returned_as_soon_as_it_comes():
    calls = itertools.count(1)
    assert wait_for(lambda: max(next(calls) - 2, 0), 5, "a third call", interval=0) == 1


def test_until_decides_what_is_good_so_a_falsy_result_can_be_awaited():
    answers = iter([{"left": 1}, {}])
    assert (
        wait_for(lambda: next(answers), 5, "nothing left", interval=0, until=lambda v: not v) == {}
    )


def test_a_wait_that_runs_out_names_what_it_waited_for_and_the_last_result():
    with pytest.raises(AssertionError, match=r"waiting for the rows \(last: 3\)"):
        wait_for(lambda: 3, 0.05, "the rows", interval=0.01, until=lambda n: n > 3)


def test_an_exception_it_is_told_to_retry_is_not_yet_and_any_other_goes_up():
    answers = iter([ConnectionError("refused"), "up"])

    def check() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for(check, 5, "the server", interval=0, retrying=(ConnectionError,)) == "up"
    with pytest.raises(ZeroDivisionError):
        wait_for(lambda: 1 / 0, 5, "a number", interval=0, retrying=(ConnectionError,))


def test_a_retried_exception_is_reported_as_the_last_result_when_time_runs_out():
    def refused() -> None:
        raise ConnectionError("refused")

    with pytest.raises(AssertionError, match=r"last: ConnectionError\('refused'\)"):
        wait_for(refused, 0.05, "the server", interval=0.01, retrying=(ConnectionError,))
