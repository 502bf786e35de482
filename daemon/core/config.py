"""The daemon's configuration: every key with its type, bounds, help and default, loaded once from TOML + environment.

Each section is a msgspec Struct whose class body is the one table of its keys (`name: Annotated[type,
_opt(help, lo=, hi=)] = default`, a Literal for a choice): msgspec checks every value as it converts a TOML
table, `section_fields` reads the table back for config.example.toml (the documentation test) and the error
messages, which name the key. Long because every key lives here once with its help text, and the rules that
join keys of several sections (`_cross_check`) sit beside them.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import msgspec


class ConfigError(Exception):
    """A bad config value; the message is one line naming the key and what is wrong."""


def _opt(help: str, *, lo: float | None = None, hi: float | None = None) -> msgspec.Meta:
    """One key's help and bounds; the key's type (a Literal for a choice) and default sit beside it."""
    return msgspec.Meta(description=help, ge=lo, le=hi)


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One TOML table; an unknown key is an error, every value is checked as the table is converted."""


class ServerConfig(_Section):
    host: Annotated[str, _opt("Address the HTTP API and the local previews listen on.")] = "127.0.0.1"
    port: Annotated[int, _opt("TCP port of the HTTP API and the local previews.", lo=1, hi=65535)] = 8080
    preview_domain: Annotated[str, _opt(
        "Local previews are served at http://<deploymentId>.<preview_domain>:<port>/.")] = "localhost"
    public_url: Annotated[str, _opt(
        "Base URL clients use to reach the API (status and log links); empty = http://host:port.")] = ""
    max_body_bytes: Annotated[int, _opt("Largest request body accepted, in bytes.", lo=1024)] = 1_048_576
    wait_timeout_s: Annotated[float, _opt(
        "How long a build request waits for its build before answering 202.", lo=0)] = 600.0
    log_level: Annotated[Literal["debug", "info", "warning", "error"], _opt("Log level of the daemon.")] = "info"
    forwarded_allow_ips: Annotated[str, _opt(
        "Proxies whose X-Forwarded-For names the client (comma-separated IPs, or *); empty = the socket's peer "
        "is the client, so no caller can pick its own IP.")] = ""
    shutdown_grace_s: Annotated[float, _opt(
        "On SIGTERM, how long a running build may go on before it is failed as interrupted.", lo=0)] = 300.0
    preview_host: Annotated[str, _opt(
        "Address of the public previews-only listener (see preview_port); empty = the same as host.")] = ""
    preview_port: Annotated[int, _opt(
        "TCP port of a separate public listener that serves previews only, never the API; 0 = previews are "
        "served on the API's port.", lo=0, hi=65535)] = 0
    accept_body_only_signatures: Annotated[bool, _opt(
        "Accept the seed's body-only x-sheen-signature (no timestamp) on POST /build-preview-for-new-project, "
        "/rebuild-preview and /generate with a JSON body; false = v2 signatures only.")] = True
    read_token_max_ttl_s: Annotated[int, _opt(
        "Longest a read token may live (its expiry minus now), in seconds.", lo=1)] = 3600
    metrics_token_env: Annotated[str, _opt(
        "Name of an environment variable holding a bearer token that /metrics and health detail also accept (for "
        "scrapers); empty = v2 signature only.")] = ""
    sse_max_streams: Annotated[int, _opt(
        "Most live log streams (SSE) open at once; past it 503 with Retry-After.", lo=1)] = 64
    sse_max_streams_per_ip: Annotated[int, _opt("Most live log streams open at once from one client IP.", lo=1)] = 4
    max_diff_bytes: Annotated[int, _opt(
        "Largest source diff answered, in bytes; past it 413 (mode=stat shows the counts).", lo=1024)] = 4_194_304
    max_log_bytes: Annotated[int, _opt(
        "Largest build log answer, in bytes; a longer log answers its last bytes.", lo=1024)] = 2_097_152
    # As much as the render check stores (check.MAX_SCREENSHOT_BYTES): a full page of photos, 1280x8000, can pass 8 MB.
    max_screenshot_bytes: Annotated[int, _opt(
        "Largest screenshot answered, in bytes (a visual diff: three times this); past it 413.", lo=1024)] = 33_554_432


class PathsConfig(_Section):
    data_dir: Annotated[str, _opt("Where state.db, queue.db, projects, objects, previews and logs live.")] = "./data"
    pnpm: Annotated[str, _opt(
        "pnpm executable; empty = the pinned pnpm installed by `make` in .tools/, else PATH.")] = ""
    node: Annotated[str, _opt("Node.js executable used to record node_version and run builds.")] = "node"
    pnpm_store: Annotated[str, _opt(
        "Shared content-addressed pnpm store for every build; empty = <data_dir>/pnpm-store.")] = ""


class GeneratorConfig(_Section):
    backend: Annotated[Literal["template", "command", "claude"], _opt("Which generator writes projects.")] = "template"
    command: Annotated[list[str], _opt(
        "argv of the `command` backend: reads the request JSON on stdin, prints the contract.")] = []
    claude_executable: Annotated[str, _opt("The Claude Code CLI used by the `claude` backend.")] = "claude"
    model: Annotated[str, _opt("Model passed to the Claude CLI with --model; empty = the CLI's default.")] = ""
    timeout_s: Annotated[float, _opt("Longest a generator may run.", lo=1)] = 600.0
    stream: Annotated[bool, _opt(
        "First builds read a streaming backend's (claude) answer as it comes: files are written and the install "
        "starts while it generates.")] = True
    max_files: Annotated[int, _opt("Most files one generated project may hold.", lo=1)] = 500
    max_file_bytes: Annotated[int, _opt("Largest single generated file, in bytes.", lo=1)] = 1_000_000
    max_total_bytes: Annotated[int, _opt("Largest generated project, all files together, in bytes.", lo=1)] = 20_000_000


class BuildConfig(_Section):
    audit: Annotated[Literal["fail", "warn", "off"], _opt(
        "`pnpm audit --prod` policy on critical advisories.")] = "fail"
    audit_registry: Annotated[str, _opt(
        "Registry URL for `pnpm audit` only; empty = https://registry.npmjs.org/ (pinned on its command line).")] = ""
    audit_cache_minutes: Annotated[int, _opt(
        "Reuse an audit of the very same lockfile this long (an unreachable advisory database: at most 10 min); "
        "0 = always audit.", lo=0)] = 60
    registry: Annotated[str, _opt(
        "npm registry for installs; empty = https://registry.npmjs.org/ (pinned on its command line).")] = ""
    allow_build_scripts: Annotated[list[str], _opt(
        "Dependencies allowed to run install scripts (pnpm onlyBuiltDependencies); all others are blocked.")] \
        = msgspec.field(default_factory=lambda: ["esbuild", "@tailwindcss/oxide"])
    node_max_old_space_mb: Annotated[int, _opt(
        "V8 heap cap for Node in builds, so a leak fails readably before the OOM kill.", lo=64)] = 768
    checks: Annotated[Literal["record", "fail", "off"], _opt(
        "Type check (`tsc`) and `eslint --max-warnings=0` after the install, when the project has them: record = "
        "deploy and record the result; fail = a failing check fails the version (`check_failed`, no preview); "
        "off = not run.")] = "record"
    keep_logs_lines: Annotated[int, _opt(
        "How many last log lines a failed build returns in its API answer.", lo=1)] = 40
    warm_projects: Annotated[int, _opt(
        "Warm bundlers kept (one per recently built Vite project, least recently used stopped first; about 350 MiB "
        "each): a one-file rebuild skips Node, Vite and node_modules' transforms. 0 = every build cold.",
        lo=0)] = 3
    warm_idle_s: Annotated[float, _opt(
        "A warm bundler unused this long is stopped.", lo=1)] = 900.0


class DeployConfig(_Section):
    backend: Annotated[Literal["local", "cloudflare"], _opt("Where previews are deployed.")] = "local"
    cf_account_id: Annotated[str, _opt("Cloudflare account id (cloudflare backend).")] = ""
    cf_project_name: Annotated[str, _opt(
        "Cloudflare Pages project that receives the previews (cloudflare backend).")] = ""
    wrangler: Annotated[list[str], _opt(
        "argv prefix that runs Wrangler (cloudflare backend).")] = msgspec.field(default_factory=lambda: ["wrangler"])
    cf_api_base: Annotated[str, _opt("Cloudflare API root.")] = "https://api.cloudflare.com/client/v4"
    timeout_s: Annotated[float, _opt("Longest one deployment upload may take.", lo=1)] = 300.0
    poll_after_s: Annotated[float, _opt(
        "Poll the Pages API for a deployment not confirmed this long after upload.", lo=0)] = 120.0
    poll_interval_s: Annotated[float, _opt("Seconds between polls of one pending deployment.", lo=1)] = 20.0
    give_up_after_s: Annotated[float, _opt(
        "A deployment still unconfirmed this long after upload is failed.", lo=1)] = 1800.0
    allow_functions: Annotated[bool, _opt(
        "Deploy server code found in the output (`_worker.js`, `_worker.js/`, `functions/`, `_routes.json`); "
        "off: they are removed and the log says so.")] = False


class LimitsConfig(_Section):
    cpu_seconds: Annotated[float, _opt(
        "CPU time for one build step, summed over its whole process tree.", lo=0.1)] = 300.0
    memory_mb: Annotated[int, _opt("Memory for one build step's process tree (no swap), in MiB.", lo=16)] = 1024
    output_mb: Annotated[int, _opt(
        "Bytes a build step may write outside node_modules, plus its log, in MiB.", lo=1)] = 100
    disk_mb: Annotated[int, _opt(
        "Disk one project's build steps may fill: workspace with node_modules, its cache and HOME, in MiB "
        "(reason disk_limit).", lo=1)] = 2048
    wall_seconds: Annotated[float, _opt("Wall-clock cap on one build step.", lo=0.1)] = 600.0
    pids: Annotated[int, _opt("Most processes and threads in one build step.", lo=8)] = 512
    log_mb: Annotated[int, _opt("Captured log per build, in MiB; past it lines are dropped.", lo=1)] = 8
    max_prompt_chars: Annotated[int, _opt("Longest prompt accepted.", lo=1)] = 20_000
    disk_reserve_mb: Annotated[int, _opt(
        "Free space kept on the data dir's filesystem: below it new builds, rebuilds and rollbacks answer 503 "
        "disk_full (small writes still go on); 0 = no reserve.", lo=0)] = 256


class RateLimitsConfig(_Section):
    per_ip_per_hour: Annotated[int, _opt(
        "Validly signed requests per client IP per hour on the signed (mutating and ops) routes; checked after "
        "the signature.", lo=1)] = 100
    failed_auth_per_ip_per_hour: Annotated[int, _opt(
        "Failed signature or token checks per client IP per hour, counted in memory; past it they answer 429 (a "
        "valid request is never refused by this).", lo=1)] = 100
    new_projects_per_user_per_hour: Annotated[int, _opt("New project builds per user per hour.", lo=1)] = 5
    rebuilds_per_project_per_hour: Annotated[int, _opt("Rebuilds (and rollbacks) per project per hour.", lo=1)] = 20


class SandboxConfig(_Section):
    layer: Annotated[Literal["auto", "cgroup_v2", "cgroup_v1", "watchdog"], _opt("Sandbox layer for builds.")] = "auto"
    build_user: Annotated[str, _opt(
        "User generated code (scripts, `pnpm build`) runs as when the daemon is root; it gets the workspace, "
        "never node_modules or the store; empty = `nobody` when root, else the daemon's own user.")] = ""
    build_network: Annotated[bool, _opt(
        "Allow network during `pnpm build` (`pnpm install` always has it and runs no scripts).")] = False
    readonly_root: Annotated[bool, _opt(
        "Run every build step in its bubblewrap view: host read-only, the data dir hidden but the project's own "
        "workspace and cache, private /tmp, no network for generated code. Off (or bubblewrap missing) = builds "
        "refused.")] = True
    allow_unconfined: Annotated[bool, _opt(
        "Run builds without the isolation layer when it is missing or off (a developer laptop only; `doctor`, "
        "/healthz?detail=1 and the log say so).")] = False


class KVConfig(_Section):
    backend: Annotated[Literal["local", "cloudflare"], _opt("Where preview pointers live.")] = "local"
    ttl_days: Annotated[int, _opt("Pointer time-to-live in days.", lo=1)] = 90
    cf_account_id: Annotated[str, _opt("Cloudflare account id (cloudflare KV).")] = ""
    cf_namespace_id: Annotated[str, _opt("Workers KV namespace id (cloudflare KV).")] = ""
    cf_api_base: Annotated[str, _opt("Cloudflare API root for KV.")] = "https://api.cloudflare.com/client/v4"


class ObjectsConfig(_Section):
    backend: Annotated[Literal["local", "s3"], _opt("Where artifacts and packs are stored.")] = "local"
    bucket: Annotated[str, _opt("Bucket name (s3 backend).")] = ""
    endpoint_url: Annotated[str, _opt(
        "S3 endpoint, e.g. https://<account>.r2.cloudflarestorage.com; empty = AWS.")] = ""
    region: Annotated[str, _opt("S3 region (`auto` for R2).")] = "auto"
    prefix: Annotated[str, _opt("Key prefix inside the bucket.")] = ""


class ReplicaConfig(_Section):
    backend: Annotated[Literal["none", "postgres"], _opt("Replicate version rows to Postgres.")] = "none"
    table: Annotated[str, _opt("Postgres table name.")] = "project_versions"
    schema: Annotated[str, _opt("Postgres schema holding the table (created when missing).")] = "public"


class SyncConfig(_Section):
    interval_s: Annotated[float, _opt(
        "Seconds between outbox drains (each write also nudges the loop).", lo=0.05)] = 2.0


class RetentionConfig(_Section):
    keep_versions: Annotated[int, _opt(
        "Versions kept per project by the nightly cleanup (pinned and live ones always).", lo=1)] = 200
    archive_after_days: Annotated[int, _opt("Artifact zips older than this move to cheaper storage.", lo=1)] = 90
    delete_rows_after_days: Annotated[int, _opt(
        "Version rows older than this are hard-deleted unless pinned.", lo=1)] = 365
    delete_previews_after_days: Annotated[int, _opt(
        "Previews (deployments) older than this are deleted, never the live one.", lo=1)] = 30
    nightly_at: Annotated[str, _opt("UTC time (HH:MM) of the nightly cleanup.")] = "03:30"
    pages_quota_month: Annotated[int, _opt(
        "Pages deployments allowed per month (metrics and the quota alert).", lo=1)] = 500


class AlertsConfig(_Section):
    webhook_url: Annotated[str, _opt("POST each alert start and clear here as JSON; empty = log only.")] = ""
    failure_rate: Annotated[float, _opt("Alert when this share of builds failed within the window.", lo=0, hi=1)] = 0.2
    window_minutes: Annotated[int, _opt("Window of the build failure-rate alert, in minutes.", lo=1)] = 15
    quota_ratio: Annotated[float, _opt(
        "Alert when Pages deployments this month reach this share of the quota.", lo=0, hi=1)] = 0.8
    auth_failures: Annotated[int, _opt(
        "Alert when this many API requests failed authentication within the window.", lo=1)] = 20
    disk_free_min_percent: Annotated[float, _opt(
        "Alert when the data dir's disk has less free space than this.", lo=0, hi=100)] = 10.0


class RenderConfig(_Section):
    enabled: Annotated[bool, _opt(
        "Open every deployed preview in headless Chromium: status, JS errors, blank page, screenshots.")] = True
    chromium: Annotated[str, _opt("Chromium executable for the render check.")] = "chromium"
    timeout_s: Annotated[float, _opt("Longest one render check may take.", lo=1)] = 30.0
    user: Annotated[str, _opt(
        "User Chromium runs as when the daemon is root (its own: not the build user); empty = `previewd-render`, "
        "created as a system user at the first render check (`nobody` if that fails).")] = ""


class RepairConfig(_Section):
    mode: Annotated[Literal["off", "suggest", "auto"], _opt(
        "What happens when a version fails (build error, `check_failed`, a blank or erroring render): off = "
        "nothing; suggest = the failed version carries a ready repair request, `POST /versions/{id}/repair` runs "
        "one attempt; auto = the generator repairs it from its own diagnostics, up to max_attempts.")] = "off"
    max_attempts: Annotated[int, _opt(
        "Most repair attempts one failure gets in `auto` (each attempt is a version).", lo=1, hi=10)] = 2
    max_errors: Annotated[int, _opt(
        "How many errors (with their source lines) a repair request carries.", lo=1, hi=50)] = 5
    log_lines: Annotated[int, _opt(
        "How many last lines of the failed build's log (ANSI stripped) a repair request carries.", lo=0,
        hi=200)] = 30


class QuotasConfig(_Section):
    default_plan: Annotated[str, _opt(
        "Plan of users (and orgs) with no assignment; empty = they have no limits. Quotas are on only when at "
        "least one [plans.<name>] table exists.")] = ""
    alert_ratio: Annotated[float, _opt(
        "Post a quota alert (once per user, quota and month) when usage reaches this share of a plan's limit.",
        lo=0.01, hi=1)] = 0.8


class PlanConfig(_Section):
    """One `[plans.<name>]` table: monthly limits (0 = unlimited) and rate caps overriding [rate_limits]."""

    build_cpu_seconds: Annotated[float, _opt(
        "Build CPU seconds per calendar month (UTC), every sandboxed step of every build summed; 0 = no limit.",
        lo=0)] = 0.0
    builds: Annotated[int, _opt("Builds (new, rebuild, rollback) admitted per calendar month; 0 = no limit.", lo=0)] = 0
    storage_bytes: Annotated[int, _opt(
        "Bytes stored for the user (artifact zips, packs, screenshots; pinned versions count); 0 = no limit.",
        lo=0)] = 0
    pages_deployments: Annotated[int, _opt(
        "Cloudflare Pages deployments per calendar month (cloudflare deploy backend only); 0 = no limit.", lo=0)] = 0
    concurrent_projects: Annotated[int, _opt(
        "Projects of the user with a build queued or running at once; 0 = no limit.", lo=0)] = 0
    new_projects_per_user_per_hour: Annotated[int, _opt(
        "Overrides [rate_limits] new_projects_per_user_per_hour for this plan; 0 = the global cap.", lo=0)] = 0
    rebuilds_per_project_per_hour: Annotated[int, _opt(
        "Overrides [rate_limits] rebuilds_per_project_per_hour for this plan; 0 = the global cap.", lo=0)] = 0
    repair_attempts: Annotated[int, _opt(
        "Repair attempts (versions the repair loop builds) per calendar month; 0 = no limit.", lo=0)] = 0
    repair_tokens: Annotated[int, _opt(
        "Generator tokens (input + output, as the Claude CLI reports them) repair attempts may use per calendar "
        "month; 0 = no limit.", lo=0)] = 0


PLAN_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


class UIConfig(_Section):
    enabled: Annotated[bool, _opt(
        "Serve the operators' dashboard under /ui on the API listener (never on a preview host or the public "
        "previews listener).")] = True
    password_hash: Annotated[str, _opt(
        "Hash of the dashboard password, made by `previewd hash-password`; empty = sign in only with a token "
        "from `daemonctl ui-token`.")] = ""
    session_hours: Annotated[float, _opt("How long a dashboard sign-in lasts, in hours.", lo=0.01, hi=720)] = 12.0
    secure_cookies: Annotated[bool, _opt(
        "Mark the dashboard's session and CSRF cookies Secure (true when the API is reached over HTTPS).")] = False


class FleetConfig(_Section):
    enabled: Annotated[bool, _opt(
        "Run as one droplet of a fleet: a fenced per-project lease in Postgres, catch-up from Postgres and S3 on "
        "takeover (needs [replica] backend = \"postgres\" and [objects] backend = \"s3\"); off = a single droplet, "
        "as before.")] = False
    droplet_id: Annotated[str, _opt(
        "This droplet's name in the fleet (lease holder); empty = the host name. Must be unique in the fleet.")] = ""
    lease_ttl_s: Annotated[float, _opt(
        "A project lease lasts this long unless renewed (every third of it while held); a dead droplet's "
        "projects move after about this long.", lo=2, hi=3600)] = 15.0
    release_idle_s: Annotated[float, _opt(
        "A held lease is released once its project has had no build, pending sync or request this long.", lo=0)] = 5.0
    preview_cache_mb: Annotated[int, _opt(
        "Local previews built on other droplets are fetched from the object store on first request and kept, "
        "least recently used first out, up to this size.", lo=1)] = 512
    warm_start: Annotated[bool, _opt(
        "Share the pnpm store through the bucket (under `_store-cache/`): each install's packages are published "
        "from this droplet's store, and a droplet starting with them missing imports the fleet's hot packages, "
        "each verified against the registry's integrity, before it takes builds (needs [objects] backend = "
        "\"s3\").")] = True
    warm_timeout_s: Annotated[float, _opt(
        "While warming, /healthz answers 503 `warming` and builds get 503 `warming`; after this long the droplet "
        "takes builds whatever is left to import.", lo=0)] = 300.0
    store_budget_mb: Annotated[int, _opt(
        "The local pnpm store's size budget: the warm start imports hot packages (most used first) only up to it, "
        "and a store grown past it is pruned (`pnpm store prune`) after the next publish.", lo=64)] = 4096
    quotas_fail_open: Annotated[bool, _opt(
        "When Postgres cannot be asked at admission, admit on this droplet's own meter (each droplet then bounds a "
        "user alone); false = refuse with 503 quota_unavailable until Postgres answers. Only with plans set.")] = False

class Config(msgspec.Struct, kw_only=True):
    """The whole configuration; secrets are never read from the file, only from the environment."""

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    paths: PathsConfig = msgspec.field(default_factory=PathsConfig)
    generator: GeneratorConfig = msgspec.field(default_factory=GeneratorConfig)
    build: BuildConfig = msgspec.field(default_factory=BuildConfig)
    deploy: DeployConfig = msgspec.field(default_factory=DeployConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    rate_limits: RateLimitsConfig = msgspec.field(default_factory=RateLimitsConfig)
    sandbox: SandboxConfig = msgspec.field(default_factory=SandboxConfig)
    kv: KVConfig = msgspec.field(default_factory=KVConfig)
    objects: ObjectsConfig = msgspec.field(default_factory=ObjectsConfig)
    replica: ReplicaConfig = msgspec.field(default_factory=ReplicaConfig)
    sync: SyncConfig = msgspec.field(default_factory=SyncConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    render: RenderConfig = msgspec.field(default_factory=RenderConfig)
    repair: RepairConfig = msgspec.field(default_factory=RepairConfig)
    quotas: QuotasConfig = msgspec.field(default_factory=QuotasConfig)
    plans: dict[str, PlanConfig] = {}
    ui: UIConfig = msgspec.field(default_factory=UIConfig)
    fleet: FleetConfig = msgspec.field(default_factory=FleetConfig)
    secrets: Secrets = msgspec.field(default_factory=lambda: Secrets())
    source: str = "defaults"

    @property
    def data_dir(self) -> Path:
        return Path(self.paths.data_dir).expanduser().resolve()

    @property
    def previews_port(self) -> int:
        """The port previews are served on: the public listener's when there is one, else the API's."""
        return self.server.preview_port or self.server.port

    @property
    def droplet_id(self) -> str:
        """This droplet's fleet name: [fleet] droplet_id, else the host name."""
        return self.fleet.droplet_id or socket.gethostname()

    @property
    def base_url(self) -> str:
        return self.server.public_url.rstrip("/") or f"http://{self.server.host}:{self.server.port}"


SECTIONS = [f for f in Config.__struct_fields__ if f not in ("secrets", "source", "plans")]

# Secrets and the environment variables that carry them; none may appear in the TOML file.
SECRET_ENV = {
    "hmac_secret": "PREVIEWD_HMAC_SECRET",
    "cf_webhook_secret": "PREVIEWD_CF_WEBHOOK_SECRET",
    "cf_api_token": "CLOUDFLARE_API_TOKEN",
    "pg_dsn": "PREVIEWD_PG_DSN",
    "s3_access_key_id": "PREVIEWD_S3_ACCESS_KEY_ID",
    "s3_secret_access_key": "PREVIEWD_S3_SECRET_ACCESS_KEY",
}


@dataclass
class Secrets:
    """Secret values from the environment; repr never shows them."""

    hmac_secret: str = ""
    cf_webhook_secret: str = ""
    cf_api_token: str = ""
    pg_dsn: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    metrics_token: str = ""  # from the variable [server] metrics_token_env names
    hmac_from_file: bool = False

    def __repr__(self) -> str:
        shown = {k: ("set" if getattr(self, k) else "unset") for k in (*SECRET_ENV, "metrics_token")}
        return f"Secrets({shown})"

    def values(self) -> list[str]:
        """Every non-empty secret, for redaction of logs."""
        return [v for k in (*SECRET_ENV, "metrics_token") if (v := getattr(self, k))]


@dataclass(frozen=True)
class Key:
    """One documented key, read back from its section's table."""

    name: str
    default: Any
    metadata: dict[str, Any]  # help, choices, lo, hi


@functools.cache
def keys_of(cls: type[msgspec.Struct]) -> tuple[Key, ...]:
    """The keys of a section struct in their order: name, default, help, choices and bounds."""
    hints = get_type_hints(cls, include_extras=True)
    out = []
    for f in msgspec.structs.fields(cls):
        kind, *extras = get_args(hints[f.name])
        meta = next(m for m in extras if isinstance(m, msgspec.Meta))
        default = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
        out.append(Key(f.name, default, {"help": meta.description, "lo": meta.ge, "hi": meta.le,
                                         "choices": get_args(kind) if get_origin(kind) is Literal else ()}))
    return tuple(out)


def _section_type(section: str) -> type[msgspec.Struct]:
    cls: type[msgspec.Struct] = type(getattr(Config(), section))
    return cls


def section_fields(section: str) -> list[Key]:
    """The documented keys of one section."""
    return list(keys_of(_section_type(section)))


def plan_fields() -> list[Key]:
    """The documented keys of a `[plans.<name>]` table."""
    return list(keys_of(PlanConfig))


_KIND = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list of strings"}
S = TypeVar("S", bound=msgspec.Struct)


def _explain(where: str, cls: type[msgspec.Struct], values: dict[str, Any], message: str) -> str:
    """msgspec's message about one table, as one line naming the key: `[section] key: must be ..., got ...`."""
    text, _, path = message.partition(" - at `$.")
    keys = {k.name: k for k in keys_of(cls)}
    if text.startswith("Object contains unknown field"):
        return f"[{where}] {text.split('`')[1]}: unknown key (known: {', '.join(keys)})"
    key = keys[re.split(r"[`\[]", path)[0]]
    if text.startswith("Invalid enum value"):
        rule = f"must be one of {', '.join(key.metadata['choices'])}"
    elif " >= " in text:
        rule = f"must be >= {key.metadata['lo']}"
    elif " <= " in text:
        rule = f"must be <= {key.metadata['hi']}"
    else:
        rule = f"must be {_KIND[type(key.default)]}"
    value = values.get(key.name)
    if isinstance(key.default, float) and type(value) is int:
        value = float(value)  # a number key holds a float, whatever the TOML spelled
    return f"[{where}] {key.name}: {rule}, got {value!r}"


def _section(where: str, cls: type[S], values: Any) -> S:
    if not isinstance(values, dict):
        raise ConfigError(f"[{where}]: must be a table")
    try:
        return msgspec.convert(values, cls)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(where, cls, values, str(exc))) from None


def _plans(plans: Any) -> dict[str, PlanConfig]:
    if not isinstance(plans, dict):
        raise ConfigError("[plans]: must hold tables, one per plan: [plans.<name>]")
    out = {}
    for name, values in plans.items():
        if not PLAN_NAME.fullmatch(name):
            raise ConfigError(f"[plans.{name}]: a plan name is 1 to 32 letters, digits, '_' or '-'")
        out[name] = _section(f"plans.{name}", PlanConfig, values)
    return out


def _parse(data: dict[str, Any]) -> Config:
    """A Config from a TOML document: each table converted (and so checked) by its section's struct."""
    given: dict[str, Any] = {}
    for section, values in data.items():
        if section == "plans":
            given["plans"] = _plans(values)
        elif section not in SECTIONS:
            raise ConfigError(f"[{section}]: unknown section (known: {', '.join(SECTIONS)})")
        else:
            given[section] = _section(section, _section_type(section), values)
    return Config(**given)


def _cross_check(cfg: Config) -> None:
    if cfg.generator.backend == "command" and not cfg.generator.command:
        raise ConfigError("[generator] command: required (an argv list) when backend = \"command\"")
    if cfg.deploy.backend == "cloudflare":
        for key in ("cf_account_id", "cf_project_name"):
            if not getattr(cfg.deploy, key):
                raise ConfigError(f"[deploy] {key}: required when backend = \"cloudflare\"")
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,56}[a-z0-9])?", cfg.deploy.cf_project_name):
            raise ConfigError(f"[deploy] cf_project_name: must be a Pages project name (lowercase letters, digits, "
                              f"'-'), got {cfg.deploy.cf_project_name!r}")
        if not cfg.deploy.wrangler:
            raise ConfigError("[deploy] wrangler: must not be empty")
        if not cfg.secrets.cf_api_token:
            raise ConfigError("CLOUDFLARE_API_TOKEN: required in the environment when [deploy] backend = "
                              "\"cloudflare\"")
    if cfg.kv.backend == "cloudflare":
        for key in ("cf_account_id", "cf_namespace_id"):
            if not getattr(cfg.kv, key):
                raise ConfigError(f"[kv] {key}: required when backend = \"cloudflare\"")
        if not cfg.secrets.cf_api_token:
            raise ConfigError("CLOUDFLARE_API_TOKEN: required in the environment when [kv] backend = \"cloudflare\"")
    if cfg.sandbox.build_user:
        from sandbox.ownership import user_ids

        try:
            user_ids(cfg.sandbox.build_user)
        except KeyError:
            raise ConfigError(f"[sandbox] build_user: no such user {cfg.sandbox.build_user!r}") from None
        if os.geteuid() != 0:
            raise ConfigError("[sandbox] build_user: switching to another user needs the daemon to run as root")
    if cfg.render.user:
        from sandbox.ownership import user_ids

        try:
            user_ids(cfg.render.user)
        except KeyError:
            raise ConfigError(f"[render] user: no such user {cfg.render.user!r}") from None
        if os.geteuid() != 0:
            raise ConfigError("[render] user: switching to another user needs the daemon to run as root")
    if cfg.objects.backend == "s3" and not cfg.objects.bucket:
        raise ConfigError("[objects] bucket: required when backend = \"s3\"")
    if cfg.replica.backend == "postgres" and not cfg.secrets.pg_dsn:
        raise ConfigError("PREVIEWD_PG_DSN: required in the environment when [replica] backend = \"postgres\"")
    _check_fleet(cfg)
    hh, _, mm = cfg.retention.nightly_at.partition(":")
    if not (hh.isdigit() and mm.isdigit() and len(mm) == 2 and int(hh) < 24 and int(mm) < 60):
        raise ConfigError(f"[retention] nightly_at: must be HH:MM (UTC), got {cfg.retention.nightly_at!r}")
    if cfg.server.preview_port and cfg.server.preview_port == cfg.server.port:
        raise ConfigError(f"[server] preview_port: must differ from port ({cfg.server.port}), or be 0")
    if cfg.server.metrics_token_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cfg.server.metrics_token_env):
        raise ConfigError(f"[server] metrics_token_env: must be an environment variable name, got "
                          f"{cfg.server.metrics_token_env!r}")
    if cfg.quotas.default_plan and cfg.quotas.default_plan not in cfg.plans:
        raise ConfigError(f"[quotas] default_plan: no [plans.{cfg.quotas.default_plan}] table (plans: "
                          f"{', '.join(cfg.plans) or 'none'})")
    label = cfg.server.preview_domain
    if not label or any(not part.replace("-", "").isalnum() for part in label.split(".")):
        raise ConfigError(f"[server] preview_domain: must be a DNS name like localhost, got {label!r}")


def _check_fleet(cfg: Config) -> None:
    """A fleet shares its history through Postgres and its packs and artifacts through S3: both are required."""
    if not cfg.fleet.enabled:
        return
    if cfg.replica.backend != "postgres":
        raise ConfigError("[replica] backend: must be \"postgres\" when [fleet] enabled = true (the leases and the "
                          "shared history live there)")
    if cfg.objects.backend != "s3":
        raise ConfigError("[objects] backend: must be \"s3\" when [fleet] enabled = true (packs and artifacts must "
                          "reach every droplet)")
    if cfg.fleet.droplet_id and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", cfg.fleet.droplet_id):
        raise ConfigError(f"[fleet] droplet_id: must be 1-64 of [A-Za-z0-9_.-], got {cfg.fleet.droplet_id!r}")


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Defaults, then the TOML file (path, or $PREVIEWD_CONFIG), then secrets from the environment; validated."""
    env = dict(os.environ if env is None else env)
    cfg = Config()
    path = path or env.get("PREVIEWD_CONFIG") or None
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p}: not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p}: not valid TOML ({exc})") from None
        cfg = _parse(data)
        cfg.source = str(p)
    for name, var in SECRET_ENV.items():
        setattr(cfg.secrets, name, env.get(var, ""))
    if cfg.server.metrics_token_env:
        cfg.secrets.metrics_token = env.get(cfg.server.metrics_token_env, "")
    if env.get("PREVIEWD_DATA_DIR"):
        cfg.paths.data_dir = env["PREVIEWD_DATA_DIR"]
    _cross_check(cfg)
    return cfg


def ensure_hmac_secret(cfg: Config) -> str:
    """The HMAC secret: from the environment, or generated once into the data dir (mode 0600), Jupyter-style."""
    if cfg.secrets.hmac_secret:
        return cfg.secrets.hmac_secret
    path = hmac_secret_path(cfg)
    if path.exists():
        value = path.read_text().strip()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
    cfg.secrets.hmac_secret = value
    cfg.secrets.hmac_from_file = True
    return value


def hmac_secret_path(cfg: Config) -> Path:
    """Where a generated HMAC secret is kept."""
    return cfg.data_dir / "hmac_secret"


def render_example() -> str:
    """config.example.toml's text: every key with its default and help, grouped by section."""
    import json

    lines = [
        "# previewd configuration. Every key is optional; the value shown is the default.",
        "# Pass with `previewd serve --config FILE` or PREVIEWD_CONFIG=FILE.",
        "# Secrets never go here; they come from the environment:",
    ]
    lines += [f"#   {var}" for var in SECRET_ENV.values()]
    lines.append("#   (no PREVIEWD_HMAC_SECRET: one is generated into <data_dir>/hmac_secret, mode 0600)")
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for f in section_fields(section):
            default = f.default
            lines.append(f"# {f.metadata['help']}")
            if f.metadata.get("choices"):
                lines.append(f"# One of: {', '.join(f.metadata['choices'])}.")
            if isinstance(default, bool):
                shown = "true" if default else "false"
            elif isinstance(default, str | list):
                shown = json.dumps(default)
            else:
                shown = repr(default)
            lines.append(f"{f.name} = {shown}")
    lines += ["", "# Plans: one table per plan, e.g. [plans.free]; none = quotas off. Every key is optional:",
              "# [plans.free]"]
    for f in plan_fields():
        lines += [f"# {f.metadata['help']}", f"# {f.name} = {f.default!r}"]
    return "\n".join(lines) + "\n"
