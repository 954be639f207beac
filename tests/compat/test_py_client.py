"""The real PyPI client ``staticbackend==0.1.1`` (py_client_runner.py) against a real server.

Runs on every store kind. The client raises ``AuthenticationError`` on any 401 and
``EmailError`` when a register answer contains ``invalid email``; it has no ``/me``,
``/email`` or ``/account/users`` methods, so the runner makes those requests itself with the
session token the client obtained and reports ``{status, contentType, body}``.
"""

from __future__ import annotations

from typing import Any

from tests.compat.support import (
    BAD_LOGIN,
    BAD_SESSION_PREFIX,
    PASSWORD,
    LiveServer,
    Runner,
    assert_account_user,
    assert_identity,
    jwt_claims,
    unique_email,
)


def value(call: dict[str, Any]) -> Any:
    assert call["ok"] is True, f"the client raised {call.get('error')}: {call.get('message')}"
    return call["value"]


def raised(call: dict[str, Any]) -> str:
    assert call["ok"] is False, f"the client should have raised, got {call.get('value')!r}"
    error: str = call["error"]
    return error


def answer(raw: dict[str, Any], status: int = 200) -> Any:
    assert raw["status"] == status, raw
    if status < 300:
        assert raw["contentType"] == "application/json", raw
    else:
        assert raw["contentType"] == "text/plain; charset=utf-8", raw
    return raw["body"]


def test_register_login_me(run_py: Runner) -> None:
    email = unique_email("Py-Mixed-Case")
    out = run_py("register_login_me", email=email, password=PASSWORD)
    registered = jwt_claims(value(out["register"]))
    logged_in = jwt_claims(value(out["login"]))
    assert registered["token"] == logged_in["token"], "register and login must name the same user"
    me = answer(out["me"])
    assert_identity(me, email, role=50)
    assert answer(out["meFromRegister"]) == me


def test_duplicate_email_registration_fails(run_py: Runner) -> None:
    email = unique_email("py-dup")
    out = run_py("duplicate_register", email=email, password=PASSWORD)
    value(out["first"])
    assert raised(out["second"]) == "EmailError"
    assert raised(out["upperCase"]) == "EmailError", "emails are compared lower-cased"
    body = answer(out["rawSecond"], 409)
    assert body.startswith("invalid email") and body.endswith("\n"), body
    jwt_claims(value(out["login"]))


def test_wrong_password_fails(run_py: Runner) -> None:
    email = unique_email("py-pw")
    out = run_py("wrong_password", email=email, password=PASSWORD)
    value(out["register"])
    assert raised(out["wrong"]) == "AuthenticationError"
    assert answer(out["rawWrong"], 401) == BAD_LOGIN
    assert raised(out["unknown"]) == "AuthenticationError"
    jwt_claims(value(out["right"]))


def test_account_users_add_list_remove(run_py: Runner) -> None:
    owner, member = unique_email("py-owner"), unique_email("py-member")
    out = run_py("account_users", owner=owner, member=member, password=PASSWORD)
    account_id = answer(out["ownerMe"])["accountId"]

    assert_account_user(answer(out["added"]), member, role=0, account_id=account_id)
    again = out["addedAgain"]
    assert again["status"] in (400, 409), again
    assert again["body"] == "email already in use\n", again

    listed = answer(out["listed"])
    assert sorted(u["email"] for u in listed) == sorted([owner, member])
    for user in listed:
        role = 50 if user["email"] == owner else 0
        assert_account_user(user, user["email"], role=role, account_id=account_id)

    jwt_claims(value(out["memberLogin"]))
    member_me = answer(out["memberMe"])
    assert_identity(member_me, member, role=0)
    assert member_me["accountId"] == account_id

    assert answer(out["removed"]) is True
    assert [u["email"] for u in answer(out["listedAfter"])] == [owner]
    assert raised(out["memberLoginAfter"]) == "AuthenticationError"


def test_two_apps_do_not_see_each_others_users(run_py: Runner, live_server: LiveServer) -> None:
    app_b = live_server.new_app(unique_email("py-tenant"))
    email, only_a = unique_email("py-both"), unique_email("py-only-a")
    out = run_py(
        "two_apps",
        pkB=app_b["pk"],
        rootB=app_b["rootToken"],
        email=email,
        passwordA=PASSWORD,
        passwordB=PASSWORD + "-b",
        onlyA=only_a,
    )
    value(out["registerA"])
    value(out["registerB"])
    me_a, me_b = answer(out["meA"]), answer(out["meB"])
    assert_identity(me_a, email, role=50)
    assert_identity(me_b, email, role=50)
    assert me_a["userId"] != me_b["userId"]
    assert me_a["accountId"] != me_b["accountId"]

    for key in ("tokenAOnB", "tokenBOnA"):
        assert answer(out[key], 400).startswith(BAD_SESSION_PREFIX), (key, out[key])

    assert raised(out["loginAWithPasswordB"]) == "AuthenticationError"
    jwt_claims(value(out["loginBWithPasswordB"]))

    value(out["registerOnlyA"])
    assert answer(out["emailOnA"]) is True
    assert answer(out["emailOnB"]) is False
    assert raised(out["loginOnlyAOnB"]) == "AuthenticationError"
