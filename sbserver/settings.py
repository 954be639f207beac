"""Settings, read once from the environment into a frozen object.

Variable names follow StaticBackend's (APP_ENV, DATABASE_URL, REDIS_URL, JWT_SECRET, PORT, ...);
our own additions are prefixed ``SB_``. Nothing else in the package reads ``os.environ``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_PORT = 8099
DEFAULT_DATA_DIR = ".sbdata"


@dataclass(frozen=True)
class Settings:
    app_env: str = "prod"  # "dev" or "prod"; dev conveniences exist only in "dev"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    data_store: str = "sqlite"  # "sqlite" or "pg"
    database_url: str = ""
    redis_url: str = ""
    jwt_secret: bytes = b""
    # encrypts what the store keeps secret (function secrets); from APP_SECRET or the data directory
    app_secret: bytes = b""
    app_url: str = ""
    # origins every app accepts besides its own list (browsers: CORS; magic-link pages)
    cors_origins: tuple[str, ...] = ()
    activate_flag: str = ""
    keep_perm_col_name: bool = True
    mail_provider: str = "dev"
    from_email: str = "no-reply@localhost"
    from_name: str = "sbserver"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_tls: str = "auto"  # auto | starttls | tls | none (backends/mail/smtp.py)
    # MAIL_PROVIDER=ses (backends/mail/ses.py): credentials from boto3's chain (AWS_ACCESS_KEY_ID, ...)
    ses_region: str = ""
    ses_endpoint: str = ""  # SB_SES_ENDPOINT: another SES-compatible endpoint (tests: moto)
    # emails an app may send (/sudo/sendmail, functions' sendMail) per mail_window_seconds (0: no limit)
    mail_per_app: int = 200
    mail_window_seconds: int = 3600
    max_body_bytes: int = 10 * 1024 * 1024
    # uploaded files: the provider (local or s3), the largest file, and the public URL the local
    # provider's links start with (LOCAL_STORAGE_URL; empty: the URL the upload request came to)
    storage_provider: str = "local"
    upload_max_bytes: int = 150 * 1000 * 1000
    local_storage_url: str = ""
    # STORAGE_PROVIDER=s3 (backends/files/s3.py): endpoint URL (empty: AWS), keys (empty: boto3's
    # chain), the public URL prefix of files, the canned ACL objects get ("": none), bucket creation
    s3_endpoint: str = ""
    s3_region: str = ""
    s3_bucket: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_cdn_url: str = ""
    s3_acl: str = "public-read"
    s3_create_bucket: bool = False
    # /extra/resizeimg: the largest image accepted, the widest result, the most pixels decoded or made
    image_max_bytes: int = 3 * 1000 * 1000
    image_max_width: int = 4096
    image_max_pixels: int = 40_000_000
    # /extra/htmltox: the Chromium to drive ("": /usr/bin/chromium when present, else Playwright's
    # own), how long a page may take, the largest output, and renders at once
    chromium_path: str = ""
    render_timeout: float = 30.0
    render_max_bytes: int = 20 * 1000 * 1000
    render_concurrency: int = 2
    twilio_api_url: str = "https://api.twilio.com"  # /extra/sms
    login_max_failures: int = 10
    login_window_seconds: int = 900
    session_cache_seconds: float = 30.0
    create_dev_app: bool = True
    realtime_max_connections: int = 0
    realtime_queue_limit: int = 2000
    realtime_rate: float = 1000.0
    realtime_max_message: int = 64 * 1024
    realtime_require_auth: bool = True
    sse_keepalive_seconds: float = 20.0
    function_timeout: float = 30.0
    function_memory_mb: int = 64
    function_workers: int = 2
    function_concurrency: int = 0  # runs computing at once; 0: the CPUs this process may use
    function_history: int = 100
    function_rate_per_minute: int = 5  # a user's messages of custom types that trigger functions
    # a user's chat messages, database writes and web calls that trigger functions, per minute
    function_event_rate_per_minute: int = 240
    function_app_rate_per_minute: int = 6000  # runs one app's events start, per minute and process
    # runs of one app at once in a process; 0: every runner but one (all of them when there are two or fewer)
    function_app_concurrency: int = 0
    task_max_per_app: int = 100  # scheduled tasks one app may have
    function_poll_seconds: float = 2.0
    function_lease_seconds: float = 0.0  # 0: the timeout plus 30 s
    # jobs one process holds in memory at most; more wait in the store until there is room
    function_queue_limit: int = 1000
    # runs deep a chain of functions may go (a run's writes and messages trigger the next ones)
    function_max_chain: int = 8
    primary_instance: str = ""
    pg_synchronous_commit: bool = True
    # auto: the SQLite writer runs on the event loop when the process has one CPU, else on a thread
    sqlite_writer: str = "auto"
    scheduler_enabled: bool = True
    scheduler_timezone: str = "UTC"
    # outbound requests (function fetch, http tasks): hosts and CIDRs opened past the private-address guard
    fetch_allow: tuple[str, ...] = ()
    fetch_max_bytes: int = 10 * 1024 * 1024
    fetch_timeout: float = 10.0
    # magic-link codes
    magic_code_ttl_seconds: int = 900
    magic_code_max_attempts: int = 5
    # apps' cache (/sudo/cache, functions' cacheSet): a value's expiry, largest value, longest queue
    cache_ttl_seconds: float = 12 * 3600.0
    cache_max_value_bytes: int = 1024 * 1024
    cache_max_queue_length: int = 10_000
    # request limits (0: off): per email, and per client address for each unauthenticated action
    # (register, magic link, /password/send, /postform, /account/init), in windows of rate_window_seconds
    rate_window_seconds: int = 900
    magic_requests_per_email: int = 5
    reset_requests_per_email: int = 5
    requests_per_address: int = 100
    # GET /metrics: with a token, to whoever sends it (Bearer); without one, to loopback clients
    # when metrics_local (default: dev mode only); else off (docs: README "Metrics and logs")
    metrics_token: str = ""
    metrics_local: bool = False
    # the admin pages (/ui): a session ends after this many minutes without a page (and 48 h after sign-in)
    ui_idle_minutes: int = 30
    quiet: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_dev(self) -> bool:
        return self.app_env == "dev"

    @property
    def is_prod(self) -> bool:
        return self.app_env == "prod"

    @property
    def files_dir(self) -> Path:
        """Where the local file provider keeps uploaded files."""
        return self.data_dir / "files"

    @property
    def sqlite_path(self) -> Path:
        if self.data_store == "sqlite" and self.database_url and self.database_url.lower() != "mem":
            return Path(self.database_url)
        return self.data_dir / "sbserver.db"

    def with_overrides(self, **kw: object) -> Settings:
        return replace(self, **kw)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"invalid {name}={raw!r}: expected an integer") from exc


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SystemExit(f"invalid {name}={value}: expected at least 1")
    return value


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path | None = None) -> int | None:
    """The CPUs a cgroup quota allows (rounded up), or None when no quota is set.

    cgroup v2 keeps ``<quota> <period>`` in ``cpu.max`` (``max`` when unlimited); v1 keeps them in
    ``cpu/cpu.cfs_quota_us`` and ``cpu/cpu.cfs_period_us`` (a quota of -1 when unlimited).
    """
    root = root or CGROUP_ROOT
    try:
        quota_text, period_text = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota_text = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period_text = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:  # "max"
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, -(-quota // period))


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity, capped by a container's CPU quota."""
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cpus = max(1, os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    return min(cpus, limit) if limit else cpus


def _keep_suffix(env: Mapping[str, str]) -> bool:
    """``KEEP_PERM_COL_NAME`` as upstream reads it (empty keeps the suffix, a value strips it),
    refusing the values whose meaning the name and upstream disagree on."""
    raw = env.get("KEEP_PERM_COL_NAME", "").strip()
    if not raw:
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SystemExit(
        f"ambiguous KEEP_PERM_COL_NAME={raw!r}: as in StaticBackend, any value strips the permission "
        "suffix from stored collection names; leave it unset to keep the suffix, or set it to false to strip it"
    )


def _writer_mode(env: Mapping[str, str]) -> str:
    mode = env.get("SB_SQLITE_WRITER", "auto").strip().lower() or "auto"
    if mode not in ("auto", "thread", "inline"):
        raise SystemExit(f"unsupported SB_SQLITE_WRITER={mode!r}: use auto, thread or inline")
    return mode


def _store_kind(env: Mapping[str, str]) -> str:
    explicit = env.get("DATA_STORE", "").strip().lower()
    url = env.get("DATABASE_URL", "").strip()
    if explicit in ("sqlite", "sqlite3"):
        return "sqlite"
    if explicit in ("pg", "postgres", "postgresql"):
        return "pg"
    if explicit:
        raise SystemExit(f"unsupported DATA_STORE={explicit!r}: use sqlite or pg")
    if url.startswith(("postgres://", "postgresql://")) or "host=" in url:
        return "pg"
    return "sqlite"


MIN_SECRET_BYTES = 32
MODES = ("dev", "prod")


def secret_file(data_dir: Path, name: str) -> bytes:
    """Return the secret kept in ``data_dir/name``, creating it on first use (or when empty)."""
    path = data_dir / name
    try:
        value = path.read_bytes().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    tmp = path.with_name(f".{name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    try:
        os.link(tmp, path)  # first writer wins; a concurrent start reads the winner's value
    except FileExistsError:
        existing = path.read_bytes().strip()
        if existing:
            return existing
        os.replace(tmp, path)
        return value
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return value


def jwt_secret_for(data_dir: Path) -> bytes:
    """The token-signing secret kept in the data directory."""
    return secret_file(data_dir, "jwt_secret")


def _mode(env: Mapping[str, str]) -> str:
    raw = env.get("APP_ENV", "").strip()
    if not raw:
        return "prod"
    if raw not in MODES:
        raise SystemExit(f"unsupported APP_ENV={raw!r}: use dev (local development conveniences) or prod")
    return raw


MAIL_PROVIDERS = ("dev", "smtp", "local", "ses")


def _mail_provider(env: Mapping[str, str]) -> str:
    """``dev`` prints mail; ``smtp`` (or ``local``, Mailpit's name for it) needs a server to send to;
    ``ses`` needs a region."""
    kind = env.get("MAIL_PROVIDER", "").strip().lower() or "dev"
    if kind not in MAIL_PROVIDERS:
        raise SystemExit(f"unsupported MAIL_PROVIDER={kind!r}: use dev (print mail), smtp or ses")
    if kind == "ses":
        if not _ses_region(env):
            raise SystemExit("MAIL_PROVIDER=ses needs a region: set S3_REGION (or SB_SES_REGION, AWS_REGION)")
        return kind
    if kind != "dev" and not (env.get("SB_SMTP_HOST") or env.get("MAILPIT_SMTP_ADDR")):
        raise SystemExit(f"MAIL_PROVIDER={kind} needs SB_SMTP_HOST (or MAILPIT_SMTP_ADDR): the server to send through")
    return kind


def _ses_region(env: Mapping[str, str]) -> str:
    for name in ("SB_SES_REGION", "S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(name, "").strip():
            return env[name].strip()
    return ""


def _ses(env: Mapping[str, str]) -> dict[str, str]:
    return {"ses_region": _ses_region(env), "ses_endpoint": _url(env, "SB_SES_ENDPOINT")}


def _storage_provider(env: Mapping[str, str]) -> str:
    """``SB_STORAGE_PROVIDER`` (or upstream's ``STORAGE_PROVIDER``): ``local`` or ``s3``."""
    kind = (env.get("SB_STORAGE_PROVIDER") or env.get("STORAGE_PROVIDER") or "local").strip().lower() or "local"
    if kind not in ("local", "s3"):
        raise SystemExit(f"unsupported SB_STORAGE_PROVIDER={kind!r}: use local (files under the data directory) or s3")
    return kind


def _url(env: Mapping[str, str], name: str, bare_host: bool = False) -> str:
    """An http(s) URL without its trailing slash; ``bare_host``: a host[:port] alone means https."""
    url = env.get(name, "").strip().rstrip("/")
    if url and bare_host and "://" not in url:
        url = "https://" + url
    if url and not url.startswith(("http://", "https://")):
        raise SystemExit(f"invalid {name}={url!r}: expected http(s)://host[:port][/path]")
    return url


S3_ACLS = ("public-read", "private", "authenticated-read", "bucket-owner-read", "bucket-owner-full-control", "none")


def _s3(env: Mapping[str, str], provider: str) -> dict[str, object]:
    """The S3 settings; with ``STORAGE_PROVIDER=s3``, a bucket and a region or an endpoint are required."""
    bucket = env.get("S3_BUCKET", "").strip()
    region = env.get("S3_REGION", "").strip()
    endpoint = _url(env, "S3_ENDPOINT", bare_host=True)  # upstream's value is a host, over TLS
    access = (env.get("S3_ACCESSKEY") or env.get("S3_ACCESS_KEY") or "").strip()
    secret = (env.get("S3_SECRETKEY") or env.get("S3_SECRET_KEY") or "").strip()
    acl = env.get("SB_S3_ACL", "").strip().lower() or "public-read"
    if acl not in S3_ACLS:
        raise SystemExit(f"unsupported SB_S3_ACL={acl!r}: use {', '.join(S3_ACLS)}")
    if provider == "s3":
        if not bucket:
            raise SystemExit("STORAGE_PROVIDER=s3 needs S3_BUCKET: the bucket files are stored in")
        if not (region or endpoint):
            raise SystemExit("STORAGE_PROVIDER=s3 needs S3_REGION (AWS) or S3_ENDPOINT (an S3-compatible server)")
        if bool(access) != bool(secret):
            raise SystemExit("S3_ACCESSKEY and S3_SECRETKEY go together: set both, or neither (boto3's own chain)")
    return {
        "s3_bucket": bucket,
        "s3_region": region,
        "s3_endpoint": endpoint,
        "s3_access_key": access,
        "s3_secret_key": secret,
        "s3_cdn_url": _url(env, "S3_CDN_URL"),
        "s3_acl": "" if acl == "none" else acl,
        "s3_create_bucket": env.get("SB_S3_CREATE_BUCKET", "").strip().lower() in ("1", "true", "yes"),
    }


def _local_storage_url(env: Mapping[str, str]) -> str:
    url = env.get("LOCAL_STORAGE_URL", "").strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise SystemExit(f"invalid LOCAL_STORAGE_URL={url!r}: expected http(s)://host[:port][/path]")
    return url


def _http_url(env: Mapping[str, str], name: str, default: str) -> str:
    url = env.get(name, "").strip().rstrip("/") or default
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"invalid {name}={url!r}: expected http(s)://host[:port][/path]")
    return url


SMTP_TLS = ("auto", "starttls", "tls", "none")


def _smtp_tls(env: Mapping[str, str]) -> str:
    """``auto``: implicit TLS on port 465, else STARTTLS when offered (required with a user)."""
    mode = env.get("SB_SMTP_TLS", "").strip().lower() or "auto"
    if mode not in SMTP_TLS:
        raise SystemExit(f"unsupported SB_SMTP_TLS={mode!r}: use {', '.join(SMTP_TLS)}")
    return mode


def _csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _check_secrets(settings: Settings) -> None:
    if not settings.is_prod:
        return
    for name, value in (("JWT_SECRET", settings.jwt_secret), ("APP_SECRET", settings.app_secret)):
        if len(value) < MIN_SECRET_BYTES:
            raise SystemExit(
                f"{name} is {len(value)} bytes: in prod it must be at least {MIN_SECRET_BYTES} "
                "(unset it to keep a generated one in the data directory)"
            )


def from_env(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides (CLI flags) win."""
    env = os.environ if env is None else env
    data_dir = Path(str(overrides.pop("data_dir", None) or env.get("SB_DATA_DIR") or DEFAULT_DATA_DIR))
    redis_url = env.get("REDIS_URL", "").strip()
    redis_host = env.get("REDIS_HOST", "").strip()
    if not redis_url and redis_host and redis_host.lower() != "mem":
        pw = env.get("REDIS_PASSWORD", "")
        redis_url = f"redis://:{pw}@{redis_host}/0" if pw else f"redis://{redis_host}/0"
    app_env = _mode(env)
    settings = Settings(
        app_env=app_env,
        host=env.get("SB_HOST", "0.0.0.0" if app_env == "prod" else "127.0.0.1"),
        port=_int(env, "PORT", DEFAULT_PORT),
        data_dir=data_dir,
        data_store=_store_kind(env),
        database_url=env.get("DATABASE_URL", "").strip(),
        redis_url=redis_url,
        jwt_secret=env.get("JWT_SECRET", "").encode(),
        app_secret=env.get("APP_SECRET", "").encode(),
        app_url=env.get("APP_URL", "").strip(),
        cors_origins=_csv(env, "SB_CORS_ORIGINS"),
        fetch_allow=_csv(env, "SB_FETCH_ALLOW"),
        fetch_max_bytes=_positive(env, "SB_FETCH_MAX_BYTES", 10 * 1024 * 1024),
        fetch_timeout=float(_positive(env, "SB_FETCH_TIMEOUT", 10)),
        magic_code_ttl_seconds=_positive(env, "SB_MAGIC_CODE_TTL_SECONDS", 900),
        magic_code_max_attempts=_positive(env, "SB_MAGIC_CODE_MAX_ATTEMPTS", 5),
        cache_ttl_seconds=float(_positive(env, "SB_CACHE_TTL_SECONDS", 12 * 3600)),
        cache_max_value_bytes=_positive(env, "SB_CACHE_MAX_VALUE_BYTES", 1024 * 1024),
        cache_max_queue_length=_positive(env, "SB_CACHE_MAX_QUEUE_LENGTH", 10_000),
        rate_window_seconds=_positive(env, "SB_RATE_WINDOW_SECONDS", 900),
        magic_requests_per_email=_int(env, "SB_MAGIC_REQUESTS_PER_EMAIL", 5),
        reset_requests_per_email=_int(env, "SB_RESET_REQUESTS_PER_EMAIL", 5),
        requests_per_address=_int(env, "SB_REQUESTS_PER_ADDRESS", 100),
        activate_flag=env.get("ACTIVATE_FLAG", "").strip(),
        keep_perm_col_name=_keep_suffix(env),
        mail_provider=_mail_provider(env),
        **_ses(env),  # type: ignore[arg-type]
        from_email=env.get("FROM_EMAIL", "no-reply@localhost"),
        from_name=env.get("FROM_NAME", "sbserver"),
        smtp_host=env.get("SB_SMTP_HOST", env.get("MAILPIT_SMTP_ADDR", "")).split(":")[0],
        smtp_port=_int(env, "SB_SMTP_PORT", 25),
        smtp_user=env.get("SB_SMTP_USER", ""),
        smtp_password=env.get("SB_SMTP_PASSWORD", ""),
        smtp_tls=_smtp_tls(env),
        mail_per_app=_int(env, "SB_MAIL_PER_APP", 200),
        mail_window_seconds=_positive(env, "SB_MAIL_WINDOW_SECONDS", 3600),
        max_body_bytes=_int(env, "SB_MAX_BODY_BYTES", 10 * 1024 * 1024),
        storage_provider=_storage_provider(env),
        **_s3(env, _storage_provider(env)),  # type: ignore[arg-type]
        upload_max_bytes=_positive(env, "SB_UPLOAD_MAX_BYTES", 150 * 1000 * 1000),
        local_storage_url=_local_storage_url(env),
        image_max_bytes=_positive(env, "SB_IMAGE_MAX_BYTES", 3 * 1000 * 1000),
        image_max_width=_positive(env, "SB_IMAGE_MAX_WIDTH", 4096),
        image_max_pixels=_positive(env, "SB_IMAGE_MAX_PIXELS", 40_000_000),
        chromium_path=env.get("SB_CHROMIUM_PATH", "").strip(),
        render_timeout=float(_positive(env, "SB_RENDER_TIMEOUT", 30)),
        render_max_bytes=_positive(env, "SB_RENDER_MAX_BYTES", 20 * 1000 * 1000),
        render_concurrency=_positive(env, "SB_RENDER_CONCURRENCY", 2),
        twilio_api_url=_http_url(env, "SB_TWILIO_API_URL", "https://api.twilio.com"),
        login_max_failures=_int(env, "SB_LOGIN_MAX_FAILURES", 10),
        login_window_seconds=_int(env, "SB_LOGIN_WINDOW_SECONDS", 900),
        session_cache_seconds=float(_int(env, "SB_SESSION_CACHE_SECONDS", 30)),
        create_dev_app=env.get("SB_CREATE_DEV_APP", "1") not in ("0", "false", "no"),
        ui_idle_minutes=_positive(env, "SB_UI_IDLE_MINUTES", 30),
        realtime_max_connections=_int(env, "SB_REALTIME_MAX_CONNECTIONS", 0),
        realtime_queue_limit=_int(env, "SB_REALTIME_QUEUE_LIMIT", 2000),
        realtime_rate=float(_int(env, "SB_REALTIME_RATE", 1000)),
        realtime_max_message=_int(env, "SB_REALTIME_MAX_MESSAGE", 64 * 1024),
        realtime_require_auth=env.get("SB_REALTIME_REQUIRE_AUTH", "1") not in ("0", "false", "no"),
        sse_keepalive_seconds=float(_int(env, "SB_SSE_KEEPALIVE_SECONDS", 20)),
        function_timeout=float(_int(env, "FUNCTION_TIMEOUT", _int(env, "SB_FN_TIMEOUT", 30))),
        function_memory_mb=_int(env, "FUNCTION_MEMORY_MB", 64),
        function_workers=_int(env, "SB_FUNCTION_WORKERS", max(2, usable_cpus())),
        function_concurrency=_int(env, "SB_FUNCTION_CONCURRENCY", 0),
        function_history=_int(env, "SB_FUNCTION_HISTORY", 100),
        function_rate_per_minute=_int(env, "SB_FUNCTION_RATE_PER_MINUTE", 5),
        function_event_rate_per_minute=_positive(env, "SB_FUNCTION_EVENT_RATE_PER_MINUTE", 240),
        function_app_rate_per_minute=_positive(env, "SB_FUNCTION_APP_RATE_PER_MINUTE", 6000),
        function_app_concurrency=_int(env, "SB_FUNCTION_APP_CONCURRENCY", 0),
        task_max_per_app=_positive(env, "SB_TASK_MAX_PER_APP", 100),
        function_poll_seconds=float(_int(env, "SB_FUNCTION_POLL_SECONDS", 2)),
        function_lease_seconds=float(_int(env, "SB_FUNCTION_LEASE_SECONDS", 0)),
        function_queue_limit=_positive(env, "SB_FUNCTION_QUEUE_LIMIT", 1000),
        function_max_chain=_positive(env, "SB_FUNCTION_MAX_CHAIN", 8),
        primary_instance=env.get("PRIMARY_INSTANCE_HOSTNAME", "").strip(),
        scheduler_enabled=env.get("SB_SCHEDULER", "1") not in ("0", "false", "no"),
        pg_synchronous_commit=env.get("SB_PG_SYNCHRONOUS_COMMIT", "on").lower() not in ("off", "0", "false", "no"),
        sqlite_writer=_writer_mode(env),
        scheduler_timezone=env.get("SB_SCHEDULER_TIMEZONE", "UTC").strip() or "UTC",
        metrics_token=env.get("SB_METRICS_TOKEN", "").strip(),
        metrics_local=env.get("SB_METRICS_LOCAL", "1" if app_env == "dev" else "0").strip().lower()
        in ("1", "true", "yes", "on"),
    )
    if overrides:
        settings = replace(settings, **overrides)  # type: ignore[arg-type]
    if not settings.jwt_secret:
        settings = replace(settings, jwt_secret=jwt_secret_for(settings.data_dir))
    if not settings.app_secret:
        settings = replace(settings, app_secret=secret_file(settings.data_dir, "app_secret"))
    _check_secrets(settings)
    return settings
