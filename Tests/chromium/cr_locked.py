#!/usr/bin/env python3
"""Chromium's locked login, as a person at the screen has it (Tests/chromium/run calls this).

Chromium runs with a window on the X display in DISPLAY (Xvfb) and opens URL. The token is locked, so
Chromium shows its own "Unlock Security Device" dialog before it uses the key: Chromium has no code for
the protected authentication path (`SlotUnlocker::GotPassword`, "TODO(mattm): handle protectedAuthPath"),
and headless Chromium waits on that dialog for ever. This script types TYPED into it and presses Return,
as a person would; NSS then logs in with no code (`PK11_CheckUserPassword` drops what was typed when the
token has CKF_PROTECTED_AUTHENTICATION_PATH), and the agent asks its pinentry. The page is read through
the DevTools protocol over a pipe (`--remote-debugging-pipe`), and the certificate it shows is printed.

    cr_locked.py URL TYPED OUT_PEM USER_DATA_DIR LOG [extra Chromium arguments...]

Exits 0 when the page showed a certificate (written to OUT_PEM), 1 otherwise, with the reason.
"""

import fcntl
import json
import os
import re
import select
import subprocess
import sys
import time

DIALOG = "Unlock Security Device"
DIALOG_TIMEOUT = 40
PAGE_TIMEOUT = 60


def log(message):
    print(f"cr_locked: {message}", flush=True)


class DevTools:
    """The DevTools protocol over Chromium's pipe: JSON messages ended by a NUL byte."""

    def __init__(self, write_fd, read_fd):
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=10):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError(f"{method}: no answer within {timeout} s")
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise EOFError("Chromium closed its DevTools pipe")
            self.buffer += chunk


def high_fd(fd):
    """A copy at 10 or above, so that placing the pipe ends at 3 and 4 in the child overwrites neither."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return copy


def xdotool(*args):
    return subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=10)


def dialogs():
    found = xdotool("search", "--onlyvisible", "--name", DIALOG)
    return found.stdout.split() if found.returncode == 0 else []


def main():
    url, typed, out_pem, user_data, log_path, *extra = sys.argv[1:]
    # Chromium reads commands on fd 3 and answers on fd 4.
    to_chromium_r, to_chromium_w = map(high_fd, os.pipe())
    from_chromium_r, from_chromium_w = map(high_fd, os.pipe())

    def place_pipes():
        os.dup2(to_chromium_r, 3)
        os.dup2(from_chromium_w, 4)

    with open(log_path, "ab") as errors:
        chromium = subprocess.Popen(
            ["chromium", *extra, f"--user-data-dir={user_data}", "--remote-debugging-pipe", "--no-first-run",
             "--disable-background-networking", "--disable-gpu", "--password-store=basic", "--lang=en-US",
             "--enable-logging=stderr", url],
            stdin=subprocess.DEVNULL, stdout=errors, stderr=errors, pass_fds=(3, 4), preexec_fn=place_pipes,
            start_new_session=True, env=dict(os.environ, LANGUAGE="en"))
    os.close(to_chromium_r)
    os.close(from_chromium_w)
    try:
        tools = DevTools(to_chromium_w, from_chromium_r)
        # 1. Chromium's own dialog, answered once, as a person would (with what they type; NSS drops it).
        deadline = time.monotonic() + DIALOG_TIMEOUT
        while not (windows := dialogs()):
            if chromium.poll() is not None:
                log(f"Chromium exited with status {chromium.returncode} before its dialog")
                return 1
            if time.monotonic() > deadline:
                log(f"Chromium showed no '{DIALOG}' dialog within {DIALOG_TIMEOUT} s")
                return 1
            time.sleep(0.2)
        window = windows[0]
        xdotool("windowfocus", "--sync", window)
        time.sleep(0.3)
        xdotool("type", "--delay", "20", typed)
        xdotool("key", "Return")
        log(f"answered Chromium's '{DIALOG}' dialog")

        # 2. The page, once the login went through: s_server -www shows the certificate it verified.
        page = next(t for t in tools.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        session = tools.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        deadline = time.monotonic() + PAGE_TIMEOUT
        text = ""
        while time.monotonic() < deadline:
            if dialogs():
                log(f"Chromium asked again with its '{DIALOG}' dialog (the login failed)")
                return 1
            try:
                result = tools.call("Runtime.evaluate", {"expression": "document.documentElement ? document.documentElement.innerText : ''",
                                                         "returnByValue": True}, session=session)
                text = result.get("result", {}).get("value") or ""
            except (RuntimeError, TimeoutError):
                text = ""
            if error := re.search(r"\bERR_[A-Z_]+\b", text):
                log(f"Chromium shows its error page {error.group(0)}: {' '.join(text.split())[:300]!r}")
                return 1
            begin, end = text.find("-----BEGIN CERTIFICATE-----"), text.find("-----END CERTIFICATE-----")
            if begin >= 0 and end > begin:
                with open(out_pem, "w") as pem:
                    pem.write(text[begin:end + len("-----END CERTIFICATE-----")] + "\n")
                return 0
            time.sleep(0.5)
        log(f"the page showed no client certificate within {PAGE_TIMEOUT} s; it shows: {' '.join(text.split())[:300]!r}")
        return 1
    finally:
        if chromium.poll() is None:
            try:
                os.killpg(chromium.pid, 15)
                chromium.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(chromium.pid, 9)
                except ProcessLookupError:
                    pass
                chromium.wait()


if __name__ == "__main__":
    sys.exit(main())
