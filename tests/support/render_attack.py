"""Issue 23, attack 3: a preview whose JavaScript reaches for everything but itself during the render check.

`Victim` is a loopback-only HTTP service (a stand-in for anything on the droplet's 127.0.0.1) that records every
request and answers each with something painted in MARKER, a colour no page here uses: if any of it reaches the
screenshot, a pixel of that colour shows it. `attack_files` is the deployment: iframes, images, stylesheets,
scripts, fetch, XHR, beacons, EventSource, WebSocket, a worker and a service worker aimed at the victim, the
daemon's own API, file:///etc/hostname and the cloud metadata address.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

MARKER = (17, 231, 93)
MARKER_CSS = "#11e75d"
METADATA = "http://169.254.169.254/latest/meta-data/"


def _marker_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), MARKER).save(buf, "PNG")
    return buf.getvalue()


class Victim:
    """The loopback service; `hits` lists every request path it saw (a connection alone is not counted)."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        png = _marker_png()
        page = (f"<html><body style='margin:0;background:{MARKER_CSS}'><h1>VICTIM SECRET</h1>"
                f"<div style='height:2000px;background:{MARKER_CSS}'></div></body></html>").encode()
        answers = {
            ".png": (png, "image/png"),
            ".css": (f"html,body,*{{background:{MARKER_CSS} !important}}".encode(), "text/css"),
            ".js": (f"document.documentElement.style.background='{MARKER_CSS}';"
                    f"document.body&&(document.body.style.background='{MARKER_CSS}');".encode(), "text/javascript"),
        }
        victim = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                victim.hits.append(self.path)
                ext = "." + self.path.split("?")[0].rsplit(".", 1)[-1] if "." in self.path else ""
                body, ctype = answers.get(ext, (page, "text/html"))
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])

    @contextmanager
    def running(self) -> Iterator[Victim]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(5)


def attack_files(victim_port: int, api_port: int) -> dict[str, str]:
    """The deployment's files: index.html (the attack) and sw.js (a service worker that tries too)."""
    v = f"http://127.0.0.1:{victim_port}"
    api = f"http://127.0.0.1:{api_port}/healthz"
    # The API's answer is painted in MARKER when the page can read it: a pixel of it means the page saw it.
    index = f"""<!doctype html><html><head><title>attack</title>
<link rel="stylesheet" href="{v}/style.css">
<link rel="preconnect" href="{v}">
<link rel="prefetch" href="{v}/prefetch.html">
<script src="{v}/inject.js"></script>
<style>iframe,img,object{{width:300px;height:200px;border:0;display:inline-block}}</style>
</head><body style="margin:0;background:#ffffff">
<h1 style="color:#222">A page that reaches out</h1>
<iframe src="{v}/frame"></iframe>
<iframe src="http://localhost:{victim_port}/frame-by-name"></iframe>
<iframe src="{api}"></iframe>
<iframe src="file:///etc/hostname"></iframe>
<iframe src="{METADATA}"></iframe>
<img src="{v}/pixel.png"><object data="{v}/object.png" type="image/png"></object>
<div style="width:300px;height:100px;background-image:url('{v}/bg.png')"></div>
<div id="out"></div>
<script>
function paint(t) {{
  document.getElementById('out').insertAdjacentHTML('beforeend',
    '<div style="width:400px;height:80px;background:{MARKER_CSS}">' + String(t).slice(0, 80) + '</div>');
}}
fetch("{v}/fetch").then(r => r.text()).then(paint).catch(() => {{}});
fetch("{api}").then(r => r.text()).then(paint).catch(() => {{}});
fetch("{METADATA}").then(r => r.text()).then(paint).catch(() => {{}});
var x = new XMLHttpRequest(); x.open("GET", "{v}/xhr"); x.onload = () => paint(x.responseText); x.send();
try {{ navigator.sendBeacon("{v}/beacon", "x"); }} catch (e) {{}}
try {{ var es = new EventSource("{v}/events"); es.onerror = () => es.close(); }} catch (e) {{}}
try {{ var ws = new WebSocket("ws://127.0.0.1:{victim_port}/ws"); ws.onopen = () => paint("ws"); }} catch (e) {{}}
try {{ window.open("{v}/popup", "_blank"); }} catch (e) {{}}
new Worker(URL.createObjectURL(new Blob(["fetch('{v}/worker').catch(() => 0)"], {{type: "text/javascript"}})));
if (navigator.serviceWorker) navigator.serviceWorker.register("/sw.js").catch(() => {{}});
</script></body></html>"""
    sw = (f"self.addEventListener('install', e => e.waitUntil(fetch('{v}/service-worker').catch(() => 0)));\n"
          f"self.addEventListener('activate', () => fetch('{v}/service-worker-active').catch(() => 0));\n")
    return {"index.html": index, "sw.js": sw}


def marker_pixels(png: bytes) -> int:
    """How many pixels of a screenshot are MARKER (give or take rounding)."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(n for n, (r, g, b) in img.getcolors(img.width * img.height) or []
               if abs(r - MARKER[0]) <= 3 and abs(g - MARKER[1]) <= 3 and abs(b - MARKER[2]) <= 3)
