"""Modes and secrets read from the environment; which origins an app accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbserver.backends.mail import Email, create_mailer
from sbserver.cli.server import dev_exposure_warning, is_loopback
from sbserver.services.origins import app_url_origin, entry_is_valid, origin_allowed
from sbserver.settings import MIN_SECRET_BYTES, cgroup_cpu_limit, from_env, jwt_secret_for, usable_cpus

LONG = "k" * MIN_SECRET_BYTES


def test_app_env_unset_is_prod(tmp_path: Path) -> None:
    settings = from_env({}, data_dir=tmp_path)
    assert settings.is_prod and not settings.is_dev
    assert len(settings.jwt_secret) >= MIN_SECRET_BYTES and len(settings.app_secret) >= MIN_SECRET_BYTES
    assert settings.host == "0.0.0.0"


@pytest.mark.parametrize("value", ["production", "development", "Dev", "test", "staging"])
def test_unknown_app_env_stops_the_start(tmp_path: Path, value: str) -> None:
    with pytest.raises(SystemExit, match="unsupported APP_ENV"):
        from_env({"APP_ENV": value}, data_dir=tmp_path)


def test_dev_is_only_ever_explicit(tmp_path: Path) -> None:
    assert from_env({"APP_ENV": "dev"}, data_dir=tmp_path).is_dev
    assert from_env({"APP_ENV": " prod "}, data_dir=tmp_path).is_prod


@pytest.mark.parametrize("name", ["JWT_SECRET", "APP_SECRET"])
def test_short_secrets_are_refused_in_prod(tmp_path: Path, name: str) -> None:
    env = {"APP_ENV": "prod", "JWT_SECRET": LONG, "APP_SECRET": LONG}
    env[name] = "short-secret"
    with pytest.raises(SystemExit, match=f"{name} is 12 bytes"):
        from_env(env, data_dir=tmp_path)
    env[name] = LONG
    assert from_env(env, data_dir=tmp_path).is_prod


def test_short_secrets_are_allowed_in_dev(tmp_path: Path) -> None:
    assert from_env({"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "y"}, data_dir=tmp_path).jwt_secret == b"x"


def test_an_empty_secret_file_is_replaced_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").write_bytes(b"")
    value = jwt_secret_for(tmp_path)
    assert len(value) == 64
    assert jwt_secret_for(tmp_path) == value == (tmp_path / "jwt_secret").read_bytes()


def test_secrets_persist_across_starts(tmp_path: Path) -> None:
    first = from_env({}, data_dir=tmp_path)
    again = from_env({}, data_dir=tmp_path)
    assert (first.jwt_secret, first.app_secret) == (again.jwt_secret, again.app_secret)
    assert first.jwt_secret != first.app_secret
    assert (tmp_path / "app_secret").stat().st_mode & 0o777 == 0o600


def test_lists_from_the_environment(tmp_path: Path) -> None:
    settings = from_env(
        {"APP_ENV": "dev", "SB_FETCH_ALLOW": " api.example , 10.0.0.0/8,", "SB_CORS_ORIGINS": "https://a.example"},
        data_dir=tmp_path,
    )
    assert settings.fetch_allow == ("api.example", "10.0.0.0/8")
    assert settings.cors_origins == ("https://a.example",)


def test_dev_mode_on_a_public_interface_is_announced() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert "WARNING: dev mode" in dev_exposure_warning("0.0.0.0")


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        ("http://localhost:5173", ["localhost"], True),
        ("https://LOCALHOST", ["localhost"], True),
        ("https://evil.example", ["localhost"], False),
        ("https://localhost.evil.example", ["localhost"], False),
        ("https://app.example", ["https://app.example"], True),
        ("https://app.example:443", ["https://app.example"], True),
        ("http://app.example", ["https://app.example"], False),
        ("https://app.example:8443", ["https://app.example"], False),
        ("https://a.app.example", ["*.app.example"], True),
        ("https://app.example", ["*.app.example"], False),
        ("https://evilapp.example", ["*.app.example"], False),
        ("null", ["localhost"], False),
        ("null", ["*"], True),
        ("https://anything.example", ["*"], True),
        ("https://app.example/magic?x=1", ["https://app.example"], True),
        ("javascript:alert(1)", ["localhost"], False),
        ("https://user@evil.example", ["localhost"], False),
    ],
)
def test_origin_allowed(origin: str, allowed: list[str], expected: bool) -> None:
    assert origin_allowed(origin, allowed) is expected


def test_list_entries_and_app_url() -> None:
    for good in ("*", "localhost", "app.example", "*.app.example", "https://app.example", "http://127.0.0.1:8080"):
        assert entry_is_valid(good), good
    for bad in ("", "ftp://x.example", "https://app.example/path", "a b", "*.", "app..example"):
        assert not entry_is_valid(bad), bad
    assert app_url_origin("https://app.example/some/page") == "https://app.example"
    assert app_url_origin("http://localhost:3000") == "http://localhost:3000"
    assert app_url_origin("not a url") == ""


@pytest.mark.parametrize(("value", "keep"), [("", True), ("false", False), ("0", False), (" No ", False)])
def test_keep_perm_col_name_says_what_it_does(tmp_path: Path, value: str, keep: bool) -> None:
    env = {"APP_ENV": "dev", "KEEP_PERM_COL_NAME": value}
    assert from_env(env, data_dir=tmp_path).keep_perm_col_name is keep


@pytest.mark.parametrize("value", ["1", "true", "yes", "strip"])
def test_keep_perm_col_name_values_that_contradict_the_name_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(SystemExit, match="ambiguous KEEP_PERM_COL_NAME"):
        from_env({"APP_ENV": "dev", "KEEP_PERM_COL_NAME": value}, data_dir=tmp_path)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
        ({}, None),
    ],
)
def test_container_cpu_quota(tmp_path: Path, files: dict[str, str], expected: int | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == expected


def test_usable_cpus_is_capped_by_the_quota(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sbserver.settings as settings_module

    (tmp_path / "cpu.max").write_text("100000 100000\n")
    monkeypatch.setattr(settings_module, "CGROUP_ROOT", tmp_path)
    assert usable_cpus() == 1


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"MAIL_PROVIDER": "ses"}, "MAIL_PROVIDER=ses needs a region"),
        ({"MAIL_PROVIDER": "sendgrid"}, "unsupported MAIL_PROVIDER='sendgrid'"),
        ({"MAIL_PROVIDER": "smtp"}, "MAIL_PROVIDER=smtp needs SB_SMTP_HOST"),
    ],
)
def test_mail_providers_that_cannot_send_stop_the_start(tmp_path: Path, env: dict[str, str], reason: str) -> None:
    with pytest.raises(SystemExit, match=reason):
        from_env({"APP_ENV": "dev", **env}, data_dir=tmp_path)


def test_smtp_with_a_host_is_accepted(tmp_path: Path) -> None:
    settings = from_env({"APP_ENV": "dev", "MAIL_PROVIDER": "SMTP", "SB_SMTP_HOST": "mail.example"}, data_dir=tmp_path)
    assert (settings.mail_provider, settings.smtp_host) == ("smtp", "mail.example")


@pytest.mark.parametrize(("mode", "shown"), [("dev", True), ("prod", False)])
async def test_the_console_mailer_prints_bodies_only_in_dev(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str, shown: bool
) -> None:
    mailer = create_mailer(from_env({"APP_ENV": mode}, data_dir=tmp_path))
    await mailer.send(Email(to="u@x.example", subject="Your code", html="<b>code 918273</b>", text="code 918273"))
    out = capsys.readouterr().out
    assert "email to u@x.example" in out and "Subject: Your code" in out
    assert ("918273" in out) is shown


def test_a_function_reads_its_own_mistakes_but_not_a_drivers_text(caplog: pytest.LogCaptureFixture) -> None:
    from sbserver.errors import BadRequest, StoreError
    from sbserver.services.fnhelpers import reason

    assert reason(BadRequest("invalid filter: unknown operator '~'")) == "invalid filter: unknown operator '~'"
    with caplog.at_level("WARNING", logger="sbserver.functions"):
        said = reason(StoreError('database error: relation "sb_x"."documents" does not exist'))
    assert said == "internal error" and "relation" not in said
    assert 'relation "sb_x"."documents" does not exist' in caplog.text
