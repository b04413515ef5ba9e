"""GET /facebook, Meta's verification challenge: 400 names what is missing, 403 a wrong mode or
token, 200 answers the challenge."""

from __future__ import annotations

import pytest

from tests.conftest import VERIFY_TOKEN

RIGHT = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}


def test_the_right_parameters_get_the_challenge(shared_gateway):
    answer = shared_gateway.http.get("/facebook", params=RIGHT)
    assert answer.status_code == 200 and answer.text == "1158201444"


@pytest.mark.parametrize("missing", sorted(RIGHT))
def test_a_missing_parameter_is_named(shared_gateway, missing):
    for params in ({k: v for k, v in RIGHT.items() if k != missing}, {**RIGHT, missing: ""}):
        answer = shared_gateway.http.get("/facebook", params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json() == {"message": f"query parameter {missing} is missing"}


def test_all_missing_are_named_at_once(shared_gateway):
    answer = shared_gateway.http.get("/facebook")
    assert answer.status_code == 400
    assert answer.json()["message"] == \
        "query parameter hub.mode, hub.verify_token, hub.challenge is missing"


@pytest.mark.parametrize("wrong", [{"hub.mode": "unsubscribe"}, {"hub.verify_token": "nope"},
                                   {"hub.verify_token": VERIFY_TOKEN + "x"}])
def test_a_wrong_mode_or_token_is_forbidden(shared_gateway, wrong):
    answer = shared_gateway.http.get("/facebook", params={**RIGHT, **wrong})
    assert answer.status_code == 403
    assert "1158201444" not in answer.text


def test_no_challenge_is_answered_without_a_verify_token_set(start_gateway):
    gw = start_gateway(FACEBOOK_WEBHOOK_SECRET="")
    answer = gw.http.get("/facebook", params=RIGHT)
    assert answer.status_code == 403
    assert "FACEBOOK_WEBHOOK_SECRET is not set" in answer.json()["message"]
