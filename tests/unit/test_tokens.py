"""Task tokens as users handle them: pasted on command lines after an option."""
from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from gridhpo import tokens
from gridhpo.tokens import new_token


def test_no_token_begins_with_a_dash_that_a_command_line_reads_as_an_option() -> None:
    # the ask-and-tell example failed with "argument --pilot-token: expected one argument" for
    # the one token in 64 that began with '-': 2,000 tokens hold about 31 such on the old code
    drawn = [new_token() for _ in range(2000)]
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{42}", t) for t in drawn)
    assert len(set(drawn)) == len(drawn)
    parser = argparse.ArgumentParser()
    parser.add_argument("--pilot-token")
    assert all(parser.parse_args(["--pilot-token", t]).pilot_token == t for t in drawn[:200])


def test_a_draw_beginning_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: Iterator[str] = iter(["-" + "a" * 42 + "xyz", "b" * 46])
    monkeypatch.setattr(tokens.secrets, "token_urlsafe", lambda n: next(draws))
    assert new_token() == "b" * 43
