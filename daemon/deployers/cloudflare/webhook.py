"""Cloudflare Pages notification webhook: shared-secret check and a defensive payload parser."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

EventState = Literal["deployed", "failed", "started", "unknown"]

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# Explicitly named deployment ids may not be UUIDs, but must still look like an identifier.
_ID_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Keys are compared lower-cased without '_' and '-': deployment_id, deploymentId, deployment-id all match.
_DEPLOYMENT_ID_KEYS = ("deploymentid", "deploymentuuid", "pagesdeploymentid")
_PROJECT_KEYS = ("projectname", "pagesproject", "pagesprojectname", "project")
_STATE_KEYS = ("alertevent", "event", "eventtype", "status", "state", "deploymentstatus")
_MAX_DEPTH = 4


class WebhookPayloadError(ValueError):
    """The callback body is not a JSON object; the endpoint answers 400."""

    code = "bad_webhook_payload"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class PagesEvent:
    """What a Pages notification says; any field may be unknown (the data shape is unconfirmed)."""

    deployment_id: str | None
    state: EventState
    project: str | None
    raw: dict[str, Any] = field(repr=False)


def verify_auth(header_value: str | None, secret: str) -> bool:
    """True when the ``cf-webhook-auth`` header equals the configured secret (constant time)."""
    if header_value is None or not secret:
        return False
    return hmac.compare_digest(header_value.encode("utf-8"), secret.encode("utf-8"))


def _norm(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _walk(obj: Any, depth: int = 0) -> list[tuple[str, Any, str]]:
    """Flatten nested mappings into (normalised key, value, normalised parent key), breadth first."""
    out: list[tuple[str, Any, str]] = []
    level: list[tuple[Mapping[str, Any], str]] = [(obj, "")] if isinstance(obj, Mapping) else []
    while level and depth <= _MAX_DEPTH:
        nxt: list[tuple[Mapping[str, Any], str]] = []
        for mapping, parent in level:
            for key, value in mapping.items():
                if not isinstance(key, str):
                    continue
                nkey = _norm(key)
                out.append((nkey, value, parent))
                if isinstance(value, Mapping):
                    nxt.append((value, nkey))
        level, depth = nxt, depth + 1
    return out


def _find_deployment_id(data: Any, text: str | None) -> str | None:
    entries = _walk(data)
    for nkey, value, _parent in entries:
        if nkey in _DEPLOYMENT_ID_KEYS and isinstance(value, str) and _ID_TOKEN.match(value):
            return value
    for nkey, value, parent in entries:
        # deployment.id / deployment.uuid, or a bare id in data that is shaped like a Pages deployment id.
        if nkey in ("id", "uuid") and isinstance(value, str):
            if parent == "deployment" and _ID_TOKEN.match(value):
                return value
            if _UUID.fullmatch(value):
                return value
    if isinstance(text, str):
        # Prefer a UUID that follows the word "deployment"; otherwise the first one in the text.
        after = re.search(r"deployment\W+(?:id\W+)?(" + _UUID.pattern + ")", text, re.IGNORECASE)
        if after:
            return after.group(1)
        first = _UUID.search(text)
        if first:
            return first.group(0)
    return None


def _find_project(data: Any) -> str | None:
    for nkey, value, parent in _walk(data):
        if nkey in _PROJECT_KEYS and isinstance(value, str) and value:
            return value
        if nkey == "name" and parent in ("project", "pagesproject") and isinstance(value, str) and value:
            return value
    return None


def _state_of(word: str) -> EventState:
    upper = word.upper()
    if "SUCCESS" in upper or "SUCCEEDED" in upper:
        return "deployed"
    if "FAIL" in upper or "CANCEL" in upper:
        return "failed"
    if "START" in upper:
        return "started"
    return "unknown"


def _find_state(payload: Mapping[str, Any]) -> EventState:
    candidates: list[str] = []
    for nkey, value, parent in _walk(payload):
        # A stage's own status ("build": "success") is not the deployment's outcome.
        if nkey in _STATE_KEYS and isinstance(value, str) and parent != "lateststage":
            candidates.append(value)
    text = payload.get("text")
    if isinstance(text, str):
        candidates.append(text)  # last resort: "... deployment failed" in the human text
    for word in candidates:
        state = _state_of(word)
        if state != "unknown":
            return state
    return "unknown"


def parse_pages_event(body: bytes) -> PagesEvent | None:
    """Parse a notification body. None: a valid alert that is not about Pages (acknowledge and ignore).

    Raises WebhookPayloadError when the body is not a JSON object. The dashboard's test message
    (``{"text": ...}``) yields an event with no deployment id and state ``unknown``.
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise WebhookPayloadError(f"webhook body is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise WebhookPayloadError(f"webhook body must be a JSON object, got {type(payload).__name__}")
    alert_type = payload.get("alert_type")
    if isinstance(alert_type, str) and alert_type and "pages" not in alert_type.lower():
        return None
    data = payload.get("data")
    text = payload.get("text")
    return PagesEvent(
        deployment_id=_find_deployment_id(data, text if isinstance(text, str) else None),
        state=_find_state(payload),
        project=_find_project(data),
        raw=payload,
    )
