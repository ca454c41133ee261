#!/usr/bin/env python3
"""A real, headless Firefox ESR logs into a TLS server with the token's certificate, registered by `signet setup` alone.

In a fresh home (its own HOME and XDG_* directories, set by Tests/firefox/run):
  1. Firefox starts once, headless, and makes its own first-run profile (Firefox ESR 153 puts it under
     $XDG_CONFIG_HOME/mozilla/firefox);
  2. signet-agent makes a software token with an RSA key, a throw-away CA issues its certificate for
     client login (clientAuth), and `signet cert import` puts it beside the key;
  3. `signet setup` registers libsignet-pkcs11.so, and must name Firefox's profile;
  4. `openssl s_server -Verify 1 -www` on 127.0.0.1 asks for a client certificate; Firefox, with
     security.default_personal_cert = "Select Automatically" and the test CA trusted for the server, loads
     the page, which shows the certificate it was sent: it must be the token's.
The login runs with the token unlocked, then locked with the agent asking through a scripted pinentry
(Tests/testdata/pinentry/fake-pinentry, a stand-in for a person at the screen): the code it gives unlocks
the token and the page loads, and the pinentry is asked once, naming Firefox.
Firefox is driven through Marionette (marionette_driver), as Tests/thunderbird does Thunderbird.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTUP_TIMEOUT = 60
PAGE_TIMEOUT = 60
TOOL_TIMEOUT = 60
SUBJECT_CN = "Alice Login Test"
CODE = "login-test-code-1"


class Failure(Exception):
    pass


def log(message):
    print(f"ff_login: {message}", flush=True)


def run(argv, env=None, input=None, check=True, timeout=TOOL_TIMEOUT):
    try:
        result = subprocess.run([str(a) for a in argv], env=env, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure(f"{argv[0]} did not finish within {timeout} s: {' '.join(map(str, argv))}")
    if check and result.returncode != 0:
        raise Failure(f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
                      + result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace"))
    return result


def check(condition, message):
    if not condition:
        raise Failure(message)
    log("ok: " + message)


def wait_port(port, process, what):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failure(f"{what} exited during start-up with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise Failure(f"{what} did not listen on port {port} within {STARTUP_TIMEOUT} s")


def stop(process):
    if process.poll() is None:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


def make_pki(pki):
    """A throw-away CA, a server certificate for 127.0.0.1, and the extensions of the login certificate."""
    pki.mkdir()
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-keyout", pki / "ca.key",
         "-out", pki / "ca.pem", "-subj", "/CN=Signet Firefox Test CA",
         "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    (pki / "server.ext").write_text("basicConstraints=CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                                    "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", pki / "server.key",
         "-subj", "/CN=127.0.0.1", "-out", pki / "server.csr"])
    run(["openssl", "x509", "-req", "-in", pki / "server.csr", "-CA", pki / "ca.pem", "-CAkey", pki / "ca.key",
         "-CAcreateserial", "-days", "30", "-extfile", pki / "server.ext", "-out", pki / "server.pem"])
    (pki / "login.ext").write_text("basicConstraints=CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                                   "extendedKeyUsage=clientAuth,emailProtection\nsubjectAltName=email:alice@example.org\n")


def make_token(pki, env):
    """A software token through the agent with an RSA key and its login certificate; left unlocked."""
    def with_code(argv, codes):
        fds = []
        for c in codes:
            r, w = os.pipe()
            os.write(w, (c + "\n").encode())
            os.close(w)
            fds.append(r)
        try:
            extra = []
            for name, fd in zip(("--code-fd", "--so-code-fd"), fds):
                extra += [name, str(fd)]
            result = subprocess.run(argv + extra, env=env, capture_output=True, timeout=TOOL_TIMEOUT, pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        if result.returncode != 0:
            raise Failure(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.decode(errors='replace')}")
    with_code(["signet", "token", "init", "--software", "--label", "Login"], [CODE, "so-" + CODE])
    with_code(["signet", "unlock"], [CODE])
    run(["signet", "key", "generate", "--type", "rsa2048", "--label", "alice-login", "--id", "01"], env=env)
    run(["signet", "csr", "--key", "01", "--subject", f"CN={SUBJECT_CN}", "--email", "alice@example.org",
         "-o", pki / "login.csr"], env=env)
    run(["openssl", "x509", "-req", "-in", pki / "login.csr", "-CA", pki / "ca.pem", "-CAkey", pki / "ca.key",
         "-CAcreateserial", "-days", "30", "-extfile", pki / "login.ext", "-out", pki / "login.pem"])
    run(["signet", "cert", "import", pki / "login.pem"], env=env)


def first_run(firefox, work, env):
    """Firefox's own first start, headless: it makes its profile and exits."""
    run([firefox, "--headless", "--screenshot", work / "first-run.png", "about:blank"], env=env, timeout=120)
    base = Path(env["XDG_CONFIG_HOME"]) / "mozilla" / "firefox"
    check((base / "profiles.ini").exists(), f"Firefox made its first profile under $XDG_CONFIG_HOME/mozilla/firefox ({base})")
    installs = (base / "installs.ini").read_text()
    default = next(line.split("=", 1)[1] for line in installs.splitlines() if line.startswith("Default="))
    profile = base / default
    check((profile / "cert9.db").exists(), f"its install's default profile {default} has its NSS database")
    return profile


def prepare_profile(profile, pki, marionette_port, env):
    """Trusts the test CA for the server and sets the preferences for an unattended run."""
    run(["certutil", "-A", "-d", f"sql:{profile}", "-n", "Signet Firefox Test CA", "-t", "C,,", "-i", pki / "ca.pem"], env=env)
    prefs = {
        "marionette.port": marionette_port,
        "security.default_personal_cert": "Select Automatically",
        "browser.shell.checkDefaultBrowser": False,
        "browser.startup.homepage_override.mstone": "ignore",
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.reportingpolicy.firstRun": False,
        "app.update.disabledForTesting": True,
        "security.OCSP.enabled": 0,
        "network.dns.disablePrefetch": True,
        "network.proxy.type": 0,
    }
    lines = []
    for name, value in prefs.items():
        literal = "true" if value is True else "false" if value is False else f'"{value}"' if isinstance(value, str) else str(value)
        lines.append(f'user_pref("{name}", {literal});')
    (profile / "user.js").write_text("\n".join(lines) + "\n")


class Firefox:
    def __init__(self, binary, profile, port, env, log_path):
        self.log_file = open(log_path, "ab")
        self.process = subprocess.Popen(
            [binary, "--headless", "--marionette", "-remote-allow-system-access", "--profile", str(profile), "--no-remote"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self.port = port
        self.client = None
        self.prompts = []

    def connect(self):
        from marionette_driver.marionette import Marionette
        wait_port(self.port, self.process, "Firefox's Marionette")
        self.client = Marionette(host="127.0.0.1", port=self.port, startup_timeout=STARTUP_TIMEOUT)
        self.client.start_session(timeout=STARTUP_TIMEOUT)
        self.client.timeout.page_load = PAGE_TIMEOUT

    def page_text(self, url):
        from marionette_driver import errors
        try:
            self.client.navigate(url)
        except errors.TimeoutException:
            raise Failure(f"the page {url} did not load within {PAGE_TIMEOUT} s")
        except errors.MarionetteException as e:
            # An error page (a refused handshake) is a failed navigation: show what Firefox shows.
            try:
                return "navigation failed: " + str(e) + "\n" + self.client.execute_script("return document.documentElement.innerText")
            except errors.MarionetteException:
                return "navigation failed: " + str(e)
        # A prompt of Firefox's own (its token password dialog) may come up, more than once; Marionette dismisses
        # each, as a person would cancel it. A few are read past; more than that is a failure of its own.
        for _ in range(5):
            try:
                text = self.client.execute_script("return document.documentElement ? document.documentElement.innerText : ''") or ""
                return ("prompt dismissed: " + self.prompts[-1] + "\n" + text) if self.prompts else text
            except errors.UnexpectedAlertOpen as e:
                self.prompts.append(str(e).splitlines()[0])
        raise Failure(f"Firefox kept prompting: {len(self.prompts)} prompts dismissed ({self.prompts[-1]})")

    def stop(self):
        if self.client is not None:
            try:
                self.client.delete_session()
            except Exception:
                pass
        stop(self.process)
        self.log_file.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--firefox", default="firefox-esr")
    parser.add_argument("--marionette-port", type=int, required=True)
    parser.add_argument("--server-port", type=int, required=True)
    parser.add_argument("--pinentry-dir", required=True, help="the scripted pinentry's directory (its plan and log)")
    parser.add_argument("--locked", choices=("yes", "no"), default="yes", help="also log in with the token locked")
    parser.add_argument("--nowhere-rounds", type=int, default=0,
                        help="then, this many times, start Firefox with no DISPLAY and no terminal on the locked token: "
                             "the page must end (an error page) within the page-load timeout, with no prompt asked")
    parser.add_argument("--work", required=True)
    args = parser.parse_args()

    work = Path(args.work)
    env = dict(os.environ)
    servers = []
    firefox = None
    try:
        pki = work / "pki"
        make_pki(pki)
        make_token(pki, env)
        log("token made: RSA key, login certificate CN=%s, unlocked" % SUBJECT_CN)
        profile = first_run(args.firefox, work, env)

        setup = run(["signet", "setup"], env=env, check=False)
        output = setup.stdout.decode() + setup.stderr.decode()
        log("signet setup:\n" + output.rstrip())
        check(f"Firefox profile {profile.name}: registered" in output, f"signet setup registered Firefox's profile {profile.name}")
        listing = run(["modutil", "-list", "-dbdir", f"sql:{profile}"], env=env).stdout.decode()
        check("libsignet-pkcs11.so" in listing, "the profile's NSS database lists libsignet-pkcs11.so")

        prepare_profile(profile, pki, args.marionette_port, env)
        server_log = open(work / "s_server.log", "wb")
        server = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{args.server_port}", "-cert", str(pki / "server.pem"),
             "-key", str(pki / "server.key"), "-CAfile", str(pki / "ca.pem"), "-Verify", "1", "-www"],
            stdin=subprocess.DEVNULL, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
        servers.append(server)
        wait_port(args.server_port, server, "openssl s_server")

        firefox = Firefox(args.firefox, profile, args.marionette_port, env, work / "firefox.log")
        firefox.connect()
        url = f"https://127.0.0.1:{args.server_port}/"
        text = firefox.page_text(url)
        check(f"CN={SUBJECT_CN}" in text or f"CN = {SUBJECT_CN}" in text,
              f"unlocked: the server's page shows the token certificate's subject CN={SUBJECT_CN}" + ("" if SUBJECT_CN in text else f"\n{text[:2000]}"))

        if args.locked == "yes":
            firefox.stop()
            firefox = None
            run(["signet", "lock"], env=env)
            plan = Path(args.pinentry_dir) / "plan"
            plan.write_text("code " + CODE.encode().hex() + "\n")
            firefox = Firefox(args.firefox, profile, args.marionette_port, env, work / "firefox.log")
            firefox.connect()
            text = firefox.page_text(url)
            pinlog = (Path(args.pinentry_dir) / "log").read_text() if (Path(args.pinentry_dir) / "log").exists() else ""
            check(SUBJECT_CN in text, f"locked: the agent's pinentry gave the code and the page shows CN={SUBJECT_CN}"
                  + ("" if SUBJECT_CN in text else f"\n{text[:2000]}\npinentry log:\n{pinlog}"))
            asks = pinlog.count("GETPIN")
            check(asks == 1, f"the pinentry was asked once (asked {asks} times)")
            check("firefox" in pinlog, "the prompt names Firefox")
            status = run(["signet", "status"], env=env).stdout.decode()
            check("unlocked" in status, "the token is unlocked after Firefox's login")

        # A locked token and nowhere to ask (no screen, no terminal): the login is refused at once, and Firefox
        # must show its error page rather than wait for ever (issue 28, item 6).
        headless_env = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        for round in range(1, args.nowhere_rounds + 1):
            if firefox is not None:
                firefox.stop()
                firefox = None
            run(["signet", "lock"], env=env)
            pinlog_path = Path(args.pinentry_dir) / "log"
            asked_before = pinlog_path.read_text().count("GETPIN") if pinlog_path.exists() else 0
            firefox = Firefox(args.firefox, profile, args.marionette_port, headless_env, work / "firefox.log")
            firefox.connect()
            began = time.monotonic()
            text = firefox.page_text(url)  # a Failure when the page does not finish loading within PAGE_TIMEOUT
            took = time.monotonic() - began
            # Without the protected path (no place for the agent to ask), Firefox asks with its own password
            # dialog; Marionette dismisses it, as a person would cancel it, and the login fails.
            # page_text came back, so the load ended within PAGE_TIMEOUT (a wait that never ends is a Failure there).
            ended = SUBJECT_CN not in text
            page = text.split("\n", 1)[1] if text.startswith("prompt dismissed: ") and "\n" in text else text
            shown = " ".join(page.split())[:60] or "an empty page"
            check(ended, f"nowhere to ask, round {round}: the page ended without the token's certificate after {took:.1f} s, showing {shown!r}"
                  + (f" ({len(firefox.prompts)} × {firefox.prompts[-1]})" if firefox.prompts else "") + ("" if ended else f"\n{text[:2000]}"))
            asked = pinlog_path.read_text().count("GETPIN") if pinlog_path.exists() else 0
            check(asked == asked_before, f"nowhere to ask, round {round}: no pinentry was asked")
            status = run(["signet", "status"], env=env).stdout.decode()
            check("state:   locked" in status, f"nowhere to ask, round {round}: the token is still locked")
        log("PASS")
        return 0
    except Failure as failure:
        log(f"FAIL: {failure}")
        for name in ("firefox.log", "s_server.log"):
            path = work / name
            if path.exists():
                log(f"--- {name} (end):\n" + path.read_text(errors="replace")[-3000:])
        return 1
    finally:
        if firefox is not None:
            firefox.stop()
        for server in servers:
            stop(server)


if __name__ == "__main__":
    sys.exit(main())
