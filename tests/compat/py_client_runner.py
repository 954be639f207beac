"""Run one scenario against a live server with the real PyPI client ``staticbackend==0.1.1``.

    .venv-pyclient/bin/python py_client_runner.py <scenario> <server-url> <public-key> [params-json]

(SB_URL, SB_PK and SB_PARAMS are read when an argument is missing.) Runs in its own virtualenv
(the client pins httpx<0.20 and pydantic 1), so it imports nothing from sbserver or the tests.
Prints ONE JSON line: each client call as {"ok": true, "value": ...} or
{"ok": false, "error": <exception class>, "message": ...}, and {"status", "contentType", "body"}
for the raw requests made beside the client (it has no /me, /email or /account/users methods).
Assertions live in pytest, not here.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx
from staticbackend import Config, StaticBackend

DEV_ROOT_ALIAS = "safe-to-use-in-dev-root-token"


class Scenario:
    def __init__(self, url: str, pk: str) -> None:
        self.url = url
        self.pk = pk

    def client(self, pk: str | None = None, root_token: str = DEV_ROOT_ALIAS) -> StaticBackend:
        return StaticBackend(Config(api_token=pk or self.pk, root_token=root_token, endpoint=self.url))

    def raw(
        self,
        method: str,
        path: str,
        *,
        pk: str | None = None,
        token: str = "",
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One request outside the client."""
        headers = {"SB-PUBLIC-KEY": pk or self.pk}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        r = httpx.request(method, self.url + path, headers=headers, json=body, params=params, timeout=30)
        ctype = r.headers.get("content-type", "")
        decoded: Any = r.json() if ctype == "application/json" else r.text
        return {"status": r.status_code, "contentType": ctype, "body": decoded}


def attempt(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        value = call()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    return {"ok": True, "value": value}


def token_of(call: Callable[[], Any]) -> Callable[[], str]:
    """register/login answer a LoginState; what matters is its session token."""
    return lambda: call().token


def register_login_me(s: Scenario, email: str, password: str) -> dict[str, Any]:
    sb = s.client()
    register = attempt(token_of(lambda: sb.user.register(email, password)))
    login = attempt(token_of(lambda: sb.user.login(email, password)))
    me = s.raw("GET", "/me", token=login.get("value", ""))
    me_from_register = s.raw("GET", "/me", token=register.get("value", ""))
    return {"register": register, "login": login, "me": me, "meFromRegister": me_from_register}


def duplicate_register(s: Scenario, email: str, password: str) -> dict[str, Any]:
    sb = s.client()
    first = attempt(token_of(lambda: sb.user.register(email, password)))
    second = attempt(token_of(lambda: sb.user.register(email, password)))
    upper_case = attempt(token_of(lambda: sb.user.register(email.upper(), password)))
    raw_second = s.raw("POST", "/register", body={"email": email, "password": password})
    login = attempt(token_of(lambda: sb.user.login(email, password)))
    return {"first": first, "second": second, "upperCase": upper_case, "rawSecond": raw_second, "login": login}


def wrong_password(s: Scenario, email: str, password: str) -> dict[str, Any]:
    sb = s.client()
    register = attempt(token_of(lambda: sb.user.register(email, password)))
    wrong = attempt(token_of(lambda: sb.user.login(email, f"not-{password}")))
    raw_wrong = s.raw("POST", "/login", body={"email": email, "password": f"not-{password}"})
    unknown = attempt(token_of(lambda: sb.user.login(f"nobody-{email}", password)))
    right = attempt(token_of(lambda: sb.user.login(email, password)))
    return {"register": register, "wrong": wrong, "rawWrong": raw_wrong, "unknown": unknown, "right": right}


def account_users(s: Scenario, owner: str, member: str, password: str) -> dict[str, Any]:
    sb = s.client()
    register = attempt(token_of(lambda: sb.user.register(owner, password)))
    token = register.get("value", "")
    owner_me = s.raw("GET", "/me", token=token)
    added = s.raw("POST", "/account/users", token=token, body={"email": member, "password": password})
    added_again = s.raw("POST", "/account/users", token=token, body={"email": member, "password": password})
    listed = s.raw("GET", "/account/users", token=token)
    member_login = attempt(token_of(lambda: sb.user.login(member, password)))
    member_me = s.raw("GET", "/me", token=member_login.get("value", ""))
    member_id = added["body"]["id"] if isinstance(added["body"], dict) else "missing"
    removed = s.raw("DELETE", f"/account/users/{member_id}", token=token)
    listed_after = s.raw("GET", "/account/users", token=token)
    member_login_after = attempt(token_of(lambda: sb.user.login(member, password)))
    return {
        "register": register,
        "ownerMe": owner_me,
        "added": added,
        "addedAgain": added_again,
        "listed": listed,
        "memberLogin": member_login,
        "memberMe": member_me,
        "removed": removed,
        "listedAfter": listed_after,
        "memberLoginAfter": member_login_after,
    }


def two_apps(
    s: Scenario, pkB: str, rootB: str, email: str, passwordA: str, passwordB: str, onlyA: str
) -> dict[str, Any]:
    a = s.client()
    b = s.client(pkB, rootB)
    register_a = attempt(token_of(lambda: a.user.register(email, passwordA)))
    register_b = attempt(token_of(lambda: b.user.register(email, passwordB)))
    token_a, token_b = register_a.get("value", ""), register_b.get("value", "")
    me_a = s.raw("GET", "/me", token=token_a)
    me_b = s.raw("GET", "/me", pk=pkB, token=token_b)
    token_a_on_b = s.raw("GET", "/me", pk=pkB, token=token_a)
    token_b_on_a = s.raw("GET", "/me", token=token_b)
    login_a_with_password_b = attempt(token_of(lambda: a.user.login(email, passwordB)))
    login_b_with_password_b = attempt(token_of(lambda: b.user.login(email, passwordB)))
    register_only_a = attempt(token_of(lambda: a.user.register(onlyA, passwordA)))
    email_on_a = s.raw("GET", "/email", params={"e": onlyA})
    email_on_b = s.raw("GET", "/email", pk=pkB, params={"e": onlyA})
    login_only_a_on_b = attempt(token_of(lambda: b.user.login(onlyA, passwordA)))
    return {
        "registerA": register_a,
        "registerB": register_b,
        "meA": me_a,
        "meB": me_b,
        "tokenAOnB": token_a_on_b,
        "tokenBOnA": token_b_on_a,
        "loginAWithPasswordB": login_a_with_password_b,
        "loginBWithPasswordB": login_b_with_password_b,
        "registerOnlyA": register_only_a,
        "emailOnA": email_on_a,
        "emailOnB": email_on_b,
        "loginOnlyAOnB": login_only_a_on_b,
    }


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "register_login_me": register_login_me,
    "duplicate_register": duplicate_register,
    "wrong_password": wrong_password,
    "account_users": account_users,
    "two_apps": two_apps,
}


def main(argv: list[str]) -> int:
    args = argv[1:]
    scenario = args[0] if args else ""
    url = args[1] if len(args) > 1 else os.environ.get("SB_URL", "")
    pk = args[2] if len(args) > 2 else os.environ.get("SB_PK", "")
    params = json.loads((args[3] if len(args) > 3 else os.environ.get("SB_PARAMS", "")) or "{}")
    if scenario not in SCENARIOS:
        sys.stderr.write(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}\n")
        return 2
    if not url or not pk:
        sys.stderr.write("usage: py_client_runner.py <scenario> <server-url> <public-key> [params-json]\n")
        return 2
    result = SCENARIOS[scenario](Scenario(url, pk), **params)
    sys.stdout.write(json.dumps({"scenario": scenario, **result}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
