"""The services of one running server, built once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from sbserver.backends.bus import Bus
from sbserver.backends.cache import Cache
from sbserver.backends.files import create_file_provider
from sbserver.backends.mail import Mailer
from sbserver.backends.storage import Store
from sbserver.outbound import Outbound
from sbserver.runtime.pool import RuntimePool
from sbserver.services.accounts import AccountService
from sbserver.services.documents import DocumentService
from sbserver.services.events import EventBus
from sbserver.services.files import FileService
from sbserver.services.fnhelpers import IO_HELPERS, Helpers
from sbserver.services.forms import FormService
from sbserver.services.functions import FunctionService
from sbserver.services.identity import IdentityService
from sbserver.services.images import ImageService
from sbserver.services.limits import Limits
from sbserver.services.mail import MailService
from sbserver.services.metrics import Metrics
from sbserver.services.oauth import OAuthService
from sbserver.services.overview import OverviewService
from sbserver.services.realtime import Broker
from sbserver.services.render import Renderer
from sbserver.services.sms import SmsService
from sbserver.services.tasks import TaskService
from sbserver.services.tenancy import TenancyService
from sbserver.services.tokens import TokenCodec
from sbserver.settings import Settings, usable_cpus


@dataclass
class Services:
    settings: Settings
    store: Store
    cache: Cache
    bus: Bus
    mailer: Mailer
    mail: MailService  # apps' own emails: checked, limited per app, counted per month
    identities: IdentityService
    limits: Limits  # request limits of the unauthenticated routes (services/limits.py)
    tenancy: TenancyService
    accounts: AccountService
    events: EventBus
    documents: DocumentService
    forms: FormService
    files: FileService  # uploaded files: records in the store, bytes with the file provider
    images: ImageService  # /extra/resizeimg
    render: Renderer  # /extra/htmltox: one headless Chromium, started on first use
    sms: SmsService  # /extra/sms
    broker: Broker
    functions: FunctionService
    tasks: TaskService
    http: Outbound  # every request made for a tenant (fetch, http tasks): the SSRF guard
    metrics: Metrics  # this app's instruments, served by /metrics
    oauth: OAuthService  # sign-in with OAuth providers and each app's provider keys
    overview: OverviewService  # the admin dashboard's counts and recent function runs


def build_services(settings: Settings, store: Store, cache: Cache, bus: Bus, mailer: Mailer) -> Services:
    events = EventBus()
    identities = IdentityService(store, cache, TokenCodec(settings.jwt_secret), settings.session_cache_seconds)
    tenancy = TenancyService(store, cache, mailer, identities, settings)
    limits = Limits(cache, settings)
    documents = DocumentService(store, events, keep_suffix=settings.keep_perm_col_name)
    broker = Broker(bus, identities, tenancy, events, settings)
    http = Outbound.from_settings(settings)
    pool = RuntimePool(
        settings.function_workers,
        settings.function_timeout,
        settings.function_memory_mb,
        concurrency=settings.function_concurrency or usable_cpus(),
        io_helpers=IO_HELPERS,
    )
    mail = MailService(store, mailer, limits, settings)
    helpers = Helpers(documents, broker, cache, mail, settings, http)
    metrics = Metrics()
    functions = FunctionService(store, cache, pool, helpers, broker, events, tenancy, settings, metrics)
    metrics.watch(broker, functions, store)
    documents.planner = functions  # new documents' function jobs are written in their transaction
    files = FileService(store, create_file_provider(settings), tenancy, settings)
    return Services(
        settings=settings,
        store=store,
        cache=cache,
        bus=bus,
        mailer=mailer,
        mail=mail,
        identities=identities,
        limits=limits,
        tenancy=tenancy,
        accounts=AccountService(store, cache, mailer, identities, settings, limits, tenancy.accepts_origin),
        events=events,
        documents=documents,
        forms=FormService(store),
        files=files,
        images=ImageService(files, settings),
        render=Renderer(files, http, settings),
        sms=SmsService(settings),
        broker=broker,
        functions=functions,
        tasks=TaskService(store, functions, broker, tenancy, http, settings),
        http=http,
        metrics=metrics,
        oauth=OAuthService(store, cache, identities, tenancy, http, settings),
        overview=OverviewService(store, settings.function_history),
    )
