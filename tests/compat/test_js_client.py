"""The real ``@staticbackend/js`` client (js/run.mjs) against a real server, on every store kind.

The client answers ``{ok, content}``: ``ok`` is false for any status above 299 and ``content`` is
then the plain-text error body. Where the status matters, the runner also makes the same request
with ``fetch`` and reports ``{status, contentType, body}``.
"""

from __future__ import annotations

from typing import Any

from tests.compat.support import (
    BAD_LOGIN,
    BAD_SESSION_PREFIX,
    MISSING_AUTH,
    PASSWORD,
    LiveServer,
    Runner,
    assert_account_user,
    assert_identity,
    jwt_claims,
    unique_email,
)


def ok(result: dict[str, Any]) -> Any:
    assert result["ok"] is True, f"the client call failed: {result['content']!r}"
    return result["content"]


def refused(result: dict[str, Any]) -> str:
    assert result["ok"] is False, f"the client call should have failed: {result['content']!r}"
    content: str = result["content"]
    return content


def test_realtime_globals_are_installed(run_js: Runner) -> None:
    out = run_js("globals")
    assert out["EventSource"] == "function"
    assert out["WebSocket"] == "function"


def test_register_login_me(run_js: Runner) -> None:
    email = unique_email("JS-Mixed-Case")
    out = run_js("register_login_me", email=email, password=PASSWORD)
    registered = jwt_claims(ok(out["register"]))
    logged_in = jwt_claims(ok(out["login"]))
    assert registered["token"] == logged_in["token"], "register and login must name the same user"
    me = ok(out["me"])
    assert_identity(me, email, role=50)
    assert ok(out["meFromRegister"]) == me
    assert out["meWithoutToken"]["status"] == 401
    assert out["meWithoutToken"]["body"] == MISSING_AUTH


def test_duplicate_email_registration_fails(run_js: Runner) -> None:
    email = unique_email("js-dup")
    out = run_js("duplicate_register", email=email, password=PASSWORD)
    ok(out["first"])
    assert "invalid email" in refused(out["second"])
    assert "invalid email" in refused(out["upperCase"]), "emails are compared lower-cased"
    raw = out["rawSecond"]
    assert raw["status"] == 409, raw
    assert raw["contentType"] == "text/plain; charset=utf-8", raw
    assert raw["body"].startswith("invalid email") and raw["body"].endswith("\n"), raw
    jwt_claims(ok(out["login"]))


def test_wrong_password_fails(run_js: Runner) -> None:
    email = unique_email("js-pw")
    out = run_js("wrong_password", email=email, password=PASSWORD)
    ok(out["register"])
    assert refused(out["wrong"]) == BAD_LOGIN
    assert out["rawWrong"]["status"] == 401
    assert out["rawWrong"]["body"] == BAD_LOGIN
    assert refused(out["unknown"]) == BAD_LOGIN
    assert out["rawUnknown"]["status"] == 401
    jwt_claims(ok(out["right"]))


def test_account_users_add_list_remove(run_js: Runner) -> None:
    owner, member = unique_email("js-owner"), unique_email("js-member")
    out = run_js("account_users", owner=owner, member=member, password=PASSWORD)
    owner_me = ok(out["ownerMe"])
    account_id = owner_me["accountId"]

    added = ok(out["added"])
    assert_account_user(added, member, role=0, account_id=account_id)
    assert "email already in use" in refused(out["addedAgain"])
    assert out["rawAddedAgain"]["status"] in (400, 409), out["rawAddedAgain"]

    listed = ok(out["listed"])
    assert sorted(u["email"] for u in listed) == sorted([owner, member])
    for user in listed:
        role = 50 if user["email"] == owner else 0
        assert_account_user(user, user["email"], role=role, account_id=account_id)

    assert_identity(ok(out["memberMe"]), member, role=0)
    assert ok(out["memberMe"])["accountId"] == account_id
    assert "permission level not high enough" in refused(out["memberRemovesOwner"])

    assert ok(out["removed"]) is True
    assert [u["email"] for u in ok(out["listedAfter"])] == [owner]
    assert refused(out["memberLoginAfter"]) == BAD_LOGIN


def test_two_apps_do_not_see_each_others_users(run_js: Runner, live_server: LiveServer) -> None:
    app_b = live_server.new_app(unique_email("js-tenant"))
    email, only_a = unique_email("js-both"), unique_email("js-only-a")
    out = run_js(
        "two_apps",
        pkB=app_b["pk"],
        email=email,
        passwordA=PASSWORD,
        passwordB=PASSWORD + "-b",
        onlyA=only_a,
    )
    me_a, me_b = ok(out["meA"]), ok(out["meB"])
    assert_identity(me_a, email, role=50)
    assert_identity(me_b, email, role=50)
    assert me_a["userId"] != me_b["userId"]
    assert me_a["accountId"] != me_b["accountId"]

    assert refused(out["tokenAOnB"]).startswith(BAD_SESSION_PREFIX)
    for key in ("rawTokenAOnB", "rawTokenBOnA"):
        assert out[key]["status"] == 400, (key, out[key])
        assert out[key]["body"].startswith(BAD_SESSION_PREFIX), (key, out[key])

    assert refused(out["loginAWithPasswordB"]) == BAD_LOGIN
    jwt_claims(ok(out["loginBWithPasswordB"]))

    ok(out["registerOnlyA"])
    assert (out["emailOnA"]["status"], out["emailOnA"]["body"]) == (200, "true")
    assert (out["emailOnB"]["status"], out["emailOnB"]["body"]) == (200, "false")
    assert refused(out["loginOnlyAOnB"]) == BAD_LOGIN


def test_account_calls(run_js: Runner) -> None:
    """changeEmail, setRole, listAssociations and promoteUser through the real client."""
    owner, member, new_email = unique_email("js-ac-owner"), unique_email("js-ac-member"), unique_email("js-ac-new")
    out = run_js("account_calls", owner=owner, member=member, newEmail=new_email.upper(), password=PASSWORD)
    account_id = ok(out["ownerMe"])["accountId"]

    assert ok(out["setRole"]) is True
    assert_identity(ok(out["memberMeAfterRole"]), member, role=10)
    assert refused(out["setRoleAboveOwn"]) == "you cannot give a role above your own (50)\n"
    assert out["rawSetRoleAboveOwn"]["status"] == 403
    assert "only an account admin" in refused(out["memberSetsOwner"])
    assert refused(out["setOwnRole"]) == "you cannot change your own role\n"

    assert ok(out["associations"]) == [{"accountId": account_id, "role": 10, "home": True}]
    assert refused(out["promote"]).startswith("account promotion belongs to the hosted offering")
    assert out["rawPromote"]["status"] == 501

    jwt_claims(ok(out["changeEmail"]))
    assert refused(out["oldTokenAfterChange"]).startswith(BAD_SESSION_PREFIX)
    assert_identity(ok(out["newTokenMe"]), new_email, role=10)
    assert refused(out["loginOldEmail"]) == BAD_LOGIN
    jwt_claims(ok(out["loginNewEmail"]))
    assert refused(out["changeToTaken"]) == "email already in use\n"
    assert out["rawChangeToTaken"]["status"] == 409
