#!/usr/bin/python3
"""Drives headless Chromium over the DevTools protocol for tests/route_web.rs.

    cdp.py URL SCREENSHOT.png [SECONDS]

Opens URL in a fresh headless Chromium (its own profile in a temp dir),
waits in real time (up to SECONDS, default 30) until the page's title is
"echo ok" or "echo failed" (ws-echo's page sets it once its WebSocket
answered or failed), saves a screenshot, and prints one JSON line:
{"title": ..., "result": <text of #result>, "seconds": <time to the title>}.
Exit 0 when it printed that line, 1 otherwise. Chromium is killed and its
profile removed on every path.
"""

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import websockets


async def drive(ws_url, url, shot, limit):
    async with websockets.connect(ws_url, max_size=None, ping_interval=None) as ws:
        ids = iter(range(1, 1_000_000))

        async def call(method, params=None, session=None):
            n = next(ids)
            msg = {"id": n, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            await ws.send(json.dumps(msg))
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("id") == n:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]

        target = (await call("Target.createTarget", {"url": url}))["targetId"]
        session = (await call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        start = time.monotonic()
        title = ""
        while time.monotonic() - start < limit:
            r = await call("Runtime.evaluate", {"expression": "document.title"}, session)
            title = r["result"].get("value", "")
            if title in ("echo ok", "echo failed"):
                break
            await asyncio.sleep(0.2)
        seconds = time.monotonic() - start
        r = await call(
            "Runtime.evaluate",
            {"expression": "(document.getElementById('result') || {}).textContent || ''"},
            session,
        )
        result = r["result"].get("value", "")
        png = await call("Page.captureScreenshot", {"format": "png"}, session)
        with open(shot, "wb") as f:
            f.write(base64.b64decode(png["data"]))
        return {"title": title, "result": result, "seconds": round(seconds, 2)}


def main():
    url, shot = sys.argv[1], sys.argv[2]
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
    # Its profile and its own temporary files (org.chromium.Chromium.*,
    # which a killed chromium cannot remove) in one directory removed below.
    profile = tempfile.mkdtemp(prefix="gvpod-chromium-")
    tmp = os.path.join(profile, "tmp")
    os.mkdir(tmp)
    env = dict(os.environ, TMPDIR=tmp)
    proc = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--window-size=800,600", "--remote-debugging-port=0",
         f"--user-data-dir={os.path.join(profile, 'profile')}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        # Its own process group: its helpers (zygote, renderers) go with it.
        start_new_session=True)
    try:
        ws_url = None
        deadline = time.monotonic() + 30
        for line in proc.stderr:
            if "DevTools listening on " in line:
                ws_url = line.split("DevTools listening on ", 1)[1].strip()
                break
            if time.monotonic() > deadline:
                break
        if not ws_url:
            print("chromium did not open its DevTools endpoint", file=sys.stderr)
            return 1
        out = asyncio.run(drive(ws_url, url, shot, limit))
        print(json.dumps(out))
        return 0
    finally:
        # The whole group: a helper still running after the main process
        # wrote into the profile while it was being removed, and left it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        for _ in range(50):
            shutil.rmtree(profile, ignore_errors=True)
            if not os.path.exists(profile):
                break
            time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
