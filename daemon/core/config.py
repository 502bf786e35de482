"""The daemon's configuration: every key with its default and help, loaded once from TOML + environment.

Long because every key lives here once, with its default, help and check (datasette's settings table): one
place to read, and the one place the documentation test reads.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A bad config value; the message is one line naming the key and what is wrong."""


def _opt(default: Any, help: str, *, choices: tuple[str, ...] = (), lo: float | None = None,
         hi: float | None = None) -> Any:
    meta = {"help": help, "choices": choices, "lo": lo, "hi": hi}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ServerConfig:
    host: str = _opt("127.0.0.1", "Address the HTTP API and the local previews listen on.")
    port: int = _opt(8080, "TCP port of the HTTP API and the local previews.", lo=1, hi=65535)
    preview_domain: str = _opt("localhost", "Local previews are served at http://<deploymentId>.<preview_domain>:<port>/.")
    public_url: str = _opt("", "Base URL clients use to reach the API (status and log links); empty = http://host:port.")
    max_body_bytes: int = _opt(1_048_576, "Largest request body accepted, in bytes.", lo=1024)
    wait_timeout_s: float = _opt(600.0, "How long a build request waits for its build before answering 202.", lo=0)
    log_level: str = _opt("info", "Log level of the daemon.", choices=("debug", "info", "warning", "error"))
    forwarded_allow_ips: str = _opt("", "Proxies whose X-Forwarded-For names the client (comma-separated IPs, or *); "
                                        "empty = the socket's peer is the client, so no caller can pick its own IP.")
    shutdown_grace_s: float = _opt(300.0, "On SIGTERM, how long a running build may go on before it is failed as "
                                          "interrupted.", lo=0)
    preview_host: str = _opt("", "Address of the public previews-only listener (see preview_port); empty = the same as "
                                 "host.")
    preview_port: int = _opt(0, "TCP port of a separate public listener that serves previews only, never the API; "
                                "0 = previews are served on the API's port.", lo=0, hi=65535)
    accept_body_only_signatures: bool = _opt(True, "Accept the seed's body-only x-sheen-signature (no timestamp) on "
                                                   "POST /build-preview-for-new-project, /rebuild-preview and "
                                                   "/generate with a JSON body; false = v2 signatures only.")
    read_token_max_ttl_s: int = _opt(3600, "Longest a read token may live (its expiry minus now), in seconds.", lo=1)
    metrics_token_env: str = _opt("", "Name of an environment variable holding a bearer token that /metrics and "
                                      "health detail also accept (for scrapers); empty = v2 signature only.")
    sse_max_streams: int = _opt(64, "Most live log streams (SSE) open at once; past it 503 with Retry-After.", lo=1)
    sse_max_streams_per_ip: int = _opt(4, "Most live log streams open at once from one client IP.", lo=1)
    max_diff_bytes: int = _opt(4_194_304, "Largest source diff answered, in bytes; past it 413 (mode=stat shows the "
                                          "counts).", lo=1024)
    max_log_bytes: int = _opt(2_097_152, "Largest build log answer, in bytes; a longer log answers its last bytes.",
                              lo=1024)
    max_screenshot_bytes: int = _opt(8_388_608, "Largest screenshot answered, in bytes (a visual diff: three times "
                                                "this); past it 413.", lo=1024)


@dataclass
class PathsConfig:
    data_dir: str = _opt("./data", "Where state.db, queue.db, projects, objects, previews and logs live.")
    pnpm: str = _opt("", "pnpm executable; empty = the pinned pnpm installed by `make` in .tools/, else PATH.")
    node: str = _opt("node", "Node.js executable used to record node_version and run builds.")
    pnpm_store: str = _opt("", "Shared content-addressed pnpm store for every build; empty = <data_dir>/pnpm-store.")


@dataclass
class GeneratorConfig:
    backend: str = _opt("template", "Which generator writes projects.", choices=("template", "command", "claude"))
    command: list[str] = _opt([], "argv of the `command` backend: reads the request JSON on stdin, prints the "
                                  "contract.")
    claude_executable: str = _opt("claude", "The Claude Code CLI used by the `claude` backend.")
    model: str = _opt("", "Model passed to the Claude CLI with --model; empty = the CLI's default.")
    timeout_s: float = _opt(600.0, "Longest a generator may run.", lo=1)
    max_files: int = _opt(500, "Most files one generated project may hold.", lo=1)
    max_file_bytes: int = _opt(1_000_000, "Largest single generated file, in bytes.", lo=1)
    max_total_bytes: int = _opt(20_000_000, "Largest generated project, all files together, in bytes.", lo=1)


@dataclass
class BuildConfig:
    audit: str = _opt("fail", "`pnpm audit --prod` policy on critical advisories.", choices=("fail", "warn", "off"))
    audit_registry: str = _opt("", "Registry URL for `pnpm audit` only; empty = the default registry.")
    audit_cache_minutes: int = _opt(60, "Reuse an audit of the very same lockfile this long (an unreachable "
                                        "advisory database: at most 10 min); 0 = always audit.", lo=0)
    registry: str = _opt("", "npm registry for installs; empty = pnpm's default.")
    allow_build_scripts: list[str] = _opt(
        ["esbuild", "@tailwindcss/oxide"],
        "Dependencies allowed to run install scripts (pnpm onlyBuiltDependencies); all others are blocked.")
    node_max_old_space_mb: int = _opt(768, "V8 heap cap for Node in builds, so a leak fails readably before the "
                                           "OOM kill.", lo=64)
    checks: str = _opt("record", "Type check (`tsc`) and `eslint --max-warnings=0` after the install, when the project "
                                 "has them: record = deploy and record the result; fail = a failing check fails "
                                 "the version (`check_failed`, no preview); off = not run.",
                       choices=("record", "fail", "off"))
    keep_logs_lines: int = _opt(40, "How many last log lines a failed build returns in its API answer.", lo=1)


@dataclass
class DeployConfig:
    backend: str = _opt("local", "Where previews are deployed.", choices=("local", "cloudflare"))
    cf_account_id: str = _opt("", "Cloudflare account id (cloudflare backend).")
    cf_project_name: str = _opt("", "Cloudflare Pages project that receives the previews (cloudflare backend).")
    wrangler: list[str] = _opt(["wrangler"], "argv prefix that runs Wrangler (cloudflare backend).")
    cf_api_base: str = _opt("https://api.cloudflare.com/client/v4", "Cloudflare API root.")
    timeout_s: float = _opt(300.0, "Longest one deployment upload may take.", lo=1)
    poll_after_s: float = _opt(120.0, "Poll the Pages API for a deployment not confirmed this long after upload.", lo=0)
    poll_interval_s: float = _opt(20.0, "Seconds between polls of one pending deployment.", lo=1)
    give_up_after_s: float = _opt(1800.0, "A deployment still unconfirmed this long after upload is failed.", lo=1)
    allow_functions: bool = _opt(False, "Deploy server code found in the output (`_worker.js`, `_worker.js/`, "
                                        "`functions/`, `_routes.json`); off: they are removed and the log says so.")


@dataclass
class LimitsConfig:
    cpu_seconds: float = _opt(300.0, "CPU time for one build step, summed over its whole process tree.", lo=0.1)
    memory_mb: int = _opt(1024, "Memory for one build step's process tree (no swap), in MiB.", lo=16)
    output_mb: int = _opt(100, "Bytes a build step may write outside node_modules, plus its log, in MiB.", lo=1)
    disk_mb: int = _opt(2048, "Disk one project's build steps may fill: workspace with node_modules, its cache and "
                              "HOME, in MiB (reason disk_limit).", lo=1)
    wall_seconds: float = _opt(600.0, "Wall-clock cap on one build step.", lo=0.1)
    pids: int = _opt(512, "Most processes and threads in one build step.", lo=8)
    log_mb: int = _opt(8, "Captured log per build, in MiB; past it lines are dropped.", lo=1)
    max_prompt_chars: int = _opt(20_000, "Longest prompt accepted.", lo=1)
    disk_reserve_mb: int = _opt(256, "Free space kept on the data dir's filesystem: below it new builds, rebuilds and "
                                     "rollbacks answer 503 disk_full (small writes still go on); 0 = no reserve.",
                                lo=0)


@dataclass
class RateLimitsConfig:
    per_ip_per_hour: int = _opt(100, "Validly signed requests per client IP per hour on the signed (mutating and "
                                     "ops) routes; checked after the signature.", lo=1)
    failed_auth_per_ip_per_hour: int = _opt(100, "Failed signature or token checks per client IP per hour, counted in "
                                                 "memory; past it they answer 429 (a valid request is never refused "
                                                 "by this).", lo=1)
    new_projects_per_user_per_hour: int = _opt(5, "New project builds per user per hour.", lo=1)
    rebuilds_per_project_per_hour: int = _opt(20, "Rebuilds (and rollbacks) per project per hour.", lo=1)


@dataclass
class SandboxConfig:
    layer: str = _opt("auto", "Sandbox layer for builds.", choices=("auto", "cgroup_v2", "cgroup_v1", "watchdog"))
    build_user: str = _opt("", "User generated code (scripts, `pnpm build`) runs as when the daemon is root; it gets "
                               "the workspace, never node_modules or the store; empty = `nobody` when root, else "
                               "the daemon's own user.")
    build_network: bool = _opt(False, "Allow network during `pnpm build` (`pnpm install` always has it and runs no "
                                      "scripts).")
    readonly_root: bool = _opt(True, "Run every build step in its bubblewrap view: host read-only, the data dir "
                                     "hidden but the project's own workspace and cache, private /tmp, no network "
                                     "for generated code. Off (or bubblewrap missing) = builds refused.")
    allow_unconfined: bool = _opt(False, "Run builds without the isolation layer when it is missing or off (a "
                                         "developer laptop only; `doctor`, /healthz?detail=1 and the log say so).")


@dataclass
class KVConfig:
    backend: str = _opt("local", "Where preview pointers live.", choices=("local", "cloudflare"))
    ttl_days: int = _opt(90, "Pointer time-to-live in days.", lo=1)
    cf_account_id: str = _opt("", "Cloudflare account id (cloudflare KV).")
    cf_namespace_id: str = _opt("", "Workers KV namespace id (cloudflare KV).")
    cf_api_base: str = _opt("https://api.cloudflare.com/client/v4", "Cloudflare API root for KV.")


@dataclass
class ObjectsConfig:
    backend: str = _opt("local", "Where artifacts and packs are stored.", choices=("local", "s3"))
    bucket: str = _opt("", "Bucket name (s3 backend).")
    endpoint_url: str = _opt("", "S3 endpoint, e.g. https://<account>.r2.cloudflarestorage.com; empty = AWS.")
    region: str = _opt("auto", "S3 region (`auto` for R2).")
    prefix: str = _opt("", "Key prefix inside the bucket.")


@dataclass
class ReplicaConfig:
    backend: str = _opt("none", "Replicate version rows to Postgres.", choices=("none", "postgres"))
    table: str = _opt("project_versions", "Postgres table name.")
    schema: str = _opt("public", "Postgres schema holding the table (created when missing).")


@dataclass
class SyncConfig:
    interval_s: float = _opt(2.0, "Seconds between outbox drains (each write also nudges the loop).", lo=0.05)


@dataclass
class RetentionConfig:
    keep_versions: int = _opt(200, "Versions kept per project by the nightly cleanup (pinned and live ones always).",
                              lo=1)
    archive_after_days: int = _opt(90, "Artifact zips older than this move to cheaper storage.", lo=1)
    delete_rows_after_days: int = _opt(365, "Version rows older than this are hard-deleted unless pinned.", lo=1)
    delete_previews_after_days: int = _opt(30, "Previews (deployments) older than this are deleted, never the "
                                               "live one.", lo=1)
    nightly_at: str = _opt("03:30", "UTC time (HH:MM) of the nightly cleanup.")
    pages_quota_month: int = _opt(500, "Pages deployments allowed per month (metrics and the quota alert).", lo=1)


@dataclass
class AlertsConfig:
    webhook_url: str = _opt("", "POST each alert start and clear here as JSON; empty = log only.")
    failure_rate: float = _opt(0.2, "Alert when this share of builds failed within the window.", lo=0, hi=1)
    window_minutes: int = _opt(15, "Window of the build failure-rate alert, in minutes.", lo=1)
    quota_ratio: float = _opt(0.8, "Alert when Pages deployments this month reach this share of the quota.",
                              lo=0, hi=1)
    auth_failures: int = _opt(20, "Alert when this many API requests failed authentication within the window.",
                              lo=1)
    disk_free_min_percent: float = _opt(10.0, "Alert when the data dir's disk has less free space than this.",
                                        lo=0, hi=100)


@dataclass
class RenderConfig:
    enabled: bool = _opt(True, "Open every deployed preview in headless Chromium: status, JS errors, blank page, "
                               "screenshots.")
    chromium: str = _opt("chromium", "Chromium executable for the render check.")
    timeout_s: float = _opt(30.0, "Longest one render check may take.", lo=1)
    user: str = _opt("", "User Chromium runs as when the daemon is root (its own: not the build user); empty = "
                         "`previewd-render`, created as a system user at the first render check (`nobody` if "
                         "that fails).")


@dataclass
class QuotasConfig:
    default_plan: str = _opt("", "Plan of users (and orgs) with no assignment; empty = they have no limits. Quotas "
                                 "are on only when at least one [plans.<name>] table exists.")
    alert_ratio: float = _opt(0.8, "Post a quota alert (once per user, quota and month) when usage reaches this "
                                   "share of a plan's limit.", lo=0.01, hi=1)


@dataclass
class PlanConfig:
    """One `[plans.<name>]` table: monthly limits (0 = unlimited) and rate caps overriding [rate_limits]."""

    build_cpu_seconds: float = _opt(0.0, "Build CPU seconds per calendar month (UTC), every sandboxed step of "
                                         "every build summed; 0 = no limit.", lo=0)
    builds: int = _opt(0, "Builds (new, rebuild, rollback) admitted per calendar month; 0 = no limit.", lo=0)
    storage_bytes: int = _opt(0, "Bytes stored for the user (artifact zips, packs, screenshots; pinned versions "
                                 "count); 0 = no limit.", lo=0)
    pages_deployments: int = _opt(0, "Cloudflare Pages deployments per calendar month (cloudflare deploy backend "
                                     "only); 0 = no limit.", lo=0)
    concurrent_projects: int = _opt(0, "Projects of the user with a build queued or running at once; 0 = no "
                                       "limit.", lo=0)
    new_projects_per_user_per_hour: int = _opt(0, "Overrides [rate_limits] new_projects_per_user_per_hour for "
                                                  "this plan; 0 = the global cap.", lo=0)
    rebuilds_per_project_per_hour: int = _opt(0, "Overrides [rate_limits] rebuilds_per_project_per_hour for this "
                                                 "plan; 0 = the global cap.", lo=0)


PLAN_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass
class UIConfig:
    enabled: bool = _opt(True, "Serve the operators' dashboard under /ui on the API listener (never on a preview "
                               "host or the public previews listener).")
    password_hash: str = _opt("", "Hash of the dashboard password, made by `previewd hash-password`; empty = sign "
                                  "in only with a token from `daemonctl ui-token`.")
    session_hours: float = _opt(12.0, "How long a dashboard sign-in lasts, in hours.", lo=0.01, hi=720)
    secure_cookies: bool = _opt(False, "Mark the dashboard's session and CSRF cookies Secure (true when the API "
                                       "is reached over HTTPS).")


@dataclass
class FleetConfig:
    enabled: bool = _opt(False, "Run as one droplet of a fleet: a fenced per-project lease in Postgres, catch-up from "
                                "Postgres and S3 on takeover (needs [replica] backend = \"postgres\" and [objects] "
                                "backend = \"s3\"); off = a single droplet, as before.")
    droplet_id: str = _opt("", "This droplet's name in the fleet (lease holder); empty = the host name. Must be "
                               "unique in the fleet.")
    lease_ttl_s: float = _opt(15.0, "A project lease lasts this long unless renewed (every third of it while held); "
                                    "a dead droplet's projects move after about this long.", lo=2, hi=3600)
    release_idle_s: float = _opt(5.0, "A held lease is released once its project has had no build, pending sync or "
                                      "request this long.", lo=0)
    preview_cache_mb: int = _opt(512, "Local previews built on other droplets are fetched from the object store on "
                                      "first request and kept, least recently used first out, up to this size.",
                                 lo=1)


@dataclass
class Config:
    """The whole configuration; secrets are never read from the file, only from the environment."""

    server: ServerConfig = field(default_factory=ServerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    kv: KVConfig = field(default_factory=KVConfig)
    objects: ObjectsConfig = field(default_factory=ObjectsConfig)
    replica: ReplicaConfig = field(default_factory=ReplicaConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    quotas: QuotasConfig = field(default_factory=QuotasConfig)
    plans: dict[str, PlanConfig] = field(default_factory=dict)
    ui: UIConfig = field(default_factory=UIConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    secrets: Secrets = field(default_factory=lambda: Secrets())
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


SECTIONS = [f.name for f in dataclasses.fields(Config) if f.name not in ("secrets", "source", "plans")]

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


def section_fields(section: str) -> list[dataclasses.Field[Any]]:
    """The documented keys of one section."""
    cls = type(getattr(Config(), section))
    return list(dataclasses.fields(cls))


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc,operator]


def _check(section: str, f: dataclasses.Field[Any], value: Any) -> Any:
    where = f"[{section}] {f.name}"
    default = _default(f)
    meta = f.metadata
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
    elif isinstance(default, list) and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{where}: must be a list of strings, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{where}: must be one of {', '.join(meta['choices'])}, got {value!r}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and value < lo:
        raise ConfigError(f"{where}: must be >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: must be <= {hi}, got {value!r}")
    return value


def plan_fields() -> list[dataclasses.Field[Any]]:
    """The documented keys of a `[plans.<name>]` table."""
    return list(dataclasses.fields(PlanConfig))


def _apply_plans(cfg: Config, plans: Any) -> None:
    if not isinstance(plans, dict):
        raise ConfigError("[plans]: must hold tables, one per plan: [plans.<name>]")
    known = {f.name: f for f in plan_fields()}
    for name, values in plans.items():
        if not PLAN_NAME.fullmatch(name):
            raise ConfigError(f"[plans.{name}]: a plan name is 1 to 32 letters, digits, '_' or '-'")
        if not isinstance(values, dict):
            raise ConfigError(f"[plans.{name}]: must be a table")
        plan = PlanConfig()
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"[plans.{name}] {key}: unknown key (known: {', '.join(known)})")
            setattr(plan, key, _check(f"plans.{name}", known[key], value))
        cfg.plans[name] = plan


def _apply(cfg: Config, data: dict[str, Any]) -> None:
    for section, values in data.items():
        if section == "plans":
            _apply_plans(cfg, values)
            continue
        if section not in SECTIONS:
            raise ConfigError(f"[{section}]: unknown section (known: {', '.join(SECTIONS)})")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}]: must be a table")
        obj = getattr(cfg, section)
        known = {f.name: f for f in section_fields(section)}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"[{section}] {key}: unknown key (known: {', '.join(known)})")
            setattr(obj, key, _check(section, known[key], value))


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
        _apply(cfg, data)
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
            default = _default(f)
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
        lines += [f"# {f.metadata['help']}", f"# {f.name} = {_default(f)!r}"]
    return "\n".join(lines) + "\n"
