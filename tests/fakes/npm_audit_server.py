"""A loopback npm advisory endpoint for `pnpm audit --registry`: answers with a critical advisory or a clean report.

pnpm 10 posts the dependency tree to `/-/npm/v1/security/audits/quick` (falling back to `/audits`) and reads the
npm v6 audit report; pnpm 11+ uses `/-/npm/v1/security/advisories/bulk`. Only the audit is pointed here
([build] audit_registry); installs still use the real registry.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _report(critical: bool, module: str) -> dict[str, Any]:
    advisories: dict[str, Any] = {}
    if critical:
        advisories["1097"] = {
            "id": 1097, "module_name": module, "severity": "critical", "title": "Test critical advisory",
            "url": "https://example.invalid/advisories/1097", "findings": [{"version": "*", "paths": [module]}],
            "vulnerable_versions": "*", "patched_versions": "<0.0.0", "recommendation": "none", "cves": [],
            "cwe": "CWE-0", "github_advisory_id": "GHSA-test-test-test", "overview": "test", "references": "",
            "access": "public", "severity_score": None, "created": "2020-01-01T00:00:00.000Z",
            "updated": "2020-01-01T00:00:00.000Z", "deleted": None, "metadata": None,
        }
    return {"actions": [], "muted": [], "advisories": advisories,
            "metadata": {"vulnerabilities": {"info": 0, "low": 0, "moderate": 0, "high": 0,
                                             "critical": 1 if critical else 0},
                         "dependencies": 1, "devDependencies": 0, "optionalDependencies": 0, "totalDependencies": 1}}


class NpmAuditServer:
    """Context manager; `url` is what `[build] audit_registry` takes; `critical` switches the answer."""

    def __init__(self, critical: bool = True, module: str = "is-number") -> None:
        self.critical = critical
        self.module = module
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                server.requests.append(self.path)
                if "/-/npm/v1/security/" not in self.path:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(_report(server.critical, server.module)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def __enter__(self) -> NpmAuditServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
