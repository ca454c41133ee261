#!/usr/bin/env python3
"""Drives a real, headless Thunderbird through S/MIME with keys on a PKCS#11 token.

In a fresh profile with the token's PKCS#11 module registered, Thunderbird must
  1. see the token's certificates as the user's own (a private key behind them)
     and take them as the identity's signing and encryption certificates,
  2. sign a message (queued to the Outbox, no network) that `openssl cms -verify`
     accepts against the throw-away CA,
  3. decrypt messages OpenSSL encrypted to the token's RSA and ECDH P-256
     certificates, read back through Thunderbird's MIME pipeline.
Negative controls run every time: a tampered copy of the signed message must fail
`openssl cms -verify`, and a message encrypted to a certificate whose key is not
on the token must not decrypt.

Thunderbird runs as `thunderbird --headless --marionette` and is driven from
marionette_driver in chrome context with its own privileged JavaScript.

Usage (Tests/thunderbird/run wraps this):
  tb_smime.py [--module PATH] [--token-label LABEL] [--pin PIN | --no-pin]
              [--token-setup softhsm|COMMAND] [--register modutil|COMMAND]
              [--ecdh require|known-failure] [--work DIR] [--keep]

--module is the PKCS#11 module Thunderbird loads (default: SoftHSM2 itself).
--token-setup puts alice's keys and certificates on a token: "softhsm" (the
default) makes a SoftHSM2 token and imports them; a COMMAND does it another way
(through signet-agent, for libsignet-pkcs11.so; see external_token_setup).
--register puts the module into the profile before Thunderbird starts:
"modutil" (the default) or a COMMAND run with PROFILE, MODULE and MODULE_NAME
in its environment (for `signet setup`).
The environment this runs in is Thunderbird's too (XDG_RUNTIME_DIR for an agent).
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

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
EMAIL = "alice@example.org"
STARTUP_TIMEOUT = 60  # seconds for Thunderbird to start and answer Marionette
SCRIPT_TIMEOUT = 30  # seconds for any one chrome script (a send, a decryption)
TOOL_TIMEOUT = 60  # seconds for any one command-line tool
RSA_SECRET = "RSA secret for Alice: the owl flies at midnight."
EC_SECRET = "ECDH secret for Alice: the heron waits at dawn."
STRANGER_SECRET = "Not for Alice: the crow sleeps."


class Failure(Exception):
    """A check failed; the message says which and why."""


def log(message):
    print(f"tb_smime: {message}", flush=True)


def run(argv, env=None, input=None, check=True):
    """Runs a command-line tool with a time bound; returns its CompletedProcess."""
    try:
        result = subprocess.run(argv, env=env, input=input, capture_output=True, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failure(f"{argv[0]} did not finish within {TOOL_TIMEOUT} s: {' '.join(map(str, argv))}")
    if check and result.returncode != 0:
        raise Failure(
            f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
            + result.stdout.decode(errors="replace")
            + result.stderr.decode(errors="replace")
        )
    return result


# ---------------------------------------------------------------------------
# Keys, certificates, the token, the profile


def make_pki(work):
    """A throw-away CA, certificate extension files for alice's two certificates
    (pki/rsa.ext, pki/ec.ext), and a stranger's RSA key and certificate (its key
    never goes on the token)."""
    pki = work / "pki"
    pki.mkdir()
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
         "-keyout", pki / "ca.key", "-out", pki / "ca.pem", "-subj", "/CN=Signet Thunderbird Test CA",
         "-addext", "basicConstraints=critical,CA:true",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    for name, email, usage in (("rsa", EMAIL, "digitalSignature,keyEncipherment"),
                               ("ec", EMAIL, "digitalSignature,keyAgreement"),
                               ("stranger", "mallory@example.net", "digitalSignature,keyEncipherment")):
        (pki / f"{name}.ext").write_text(
            "basicConstraints=CA:false\n"
            f"keyUsage=critical,{usage}\n"
            "extendedKeyUsage=emailProtection\n"
            f"subjectAltName=email:{email}\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    make_key(pki, "stranger", "RSA")
    issue(pki, "stranger", "/CN=Mallory/emailAddress=mallory@example.net")
    return pki


def make_key(pki, name, kind):
    key = pki / f"{name}.key"
    if kind == "RSA":
        run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key])
    else:
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])


def issue(pki, name, subject):
    """pki/NAME.pem (and .der) for pki/NAME.key, issued by the test CA with pki/NAME.ext."""
    run(["openssl", "req", "-new", "-key", pki / f"{name}.key", "-subj", subject, "-out", pki / f"{name}.csr"])
    run(["openssl", "x509", "-req", "-in", pki / f"{name}.csr", "-CA", pki / "ca.pem",
         "-CAkey", pki / "ca.key", "-CAcreateserial", "-days", "30",
         "-extfile", pki / f"{name}.ext", "-out", pki / f"{name}.pem"])
    run(["openssl", "x509", "-in", pki / f"{name}.pem", "-outform", "DER", "-out", pki / f"{name}.der"])


def make_softhsm_token(work, pki, label, pin):
    """The built-in token set-up: a SoftHSM2 token holding alice's RSA-2048 key
    (CKA_ID 01) and EC P-256 key (02), made by OpenSSL and imported, each with its
    certificate under the same CKA_ID, as NSS pairs them. Returns the
    environment Thunderbird needs to see the token (SOFTHSM2_CONF)."""
    tokens = work / "softhsm-tokens"
    tokens.mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", pin + "00"], env=env)
    tool = ["pkcs11-tool", "--module", SOFTHSM, "--token-label", label, "--login", "--pin", pin]
    for name, kind, ident, subject in (("rsa", "RSA", "01", "/CN=Alice Example/emailAddress=" + EMAIL),
                                       ("ec", "EC", "02", "/CN=Alice Example (EC)/emailAddress=" + EMAIL)):
        make_key(pki, name, kind)
        issue(pki, name, subject)
        # pkcs11-tool rather than softhsm2-util --import: the latter leaves CKA_DERIVE
        # false on EC keys, and ECDH decryption needs it.
        usages = ["--usage-decrypt", "--usage-sign"] if kind == "RSA" else ["--usage-derive", "--usage-sign"]
        run(tool + ["--write-object", pki / f"{name}.key", "--type", "privkey", "--id", ident,
                    "--label", f"alice-{name}", *usages], env=env)
        run(tool + ["--write-object", pki / f"{name}.der", "--type", "cert", "--id", ident,
                    "--label", f"alice-{name}"], env=env)
        (pki / f"{name}.key").unlink()  # the key lives on the token only from here on
    return {"SOFTHSM2_CONF": str(conf)}


def external_token_setup(command, work, pki, label, pin):
    """Another token set-up, as a shell command. It runs with WORK, PKI, TOKEN_LABEL
    and PIN in its environment and must leave, on a token labelled TOKEN_LABEL that
    --module shows, alice's RSA-2048 and EC P-256 keys with their certificates,
    and those certificates in PKI/rsa.pem and PKI/ec.pem (issued by PKI/ca.pem with
    PKI/ca.key and the extensions in PKI/rsa.ext and PKI/ec.ext)."""
    env = dict(os.environ, WORK=str(work), PKI=str(pki), TOKEN_LABEL=label, PIN=pin)
    try:
        result = subprocess.run(command, shell=True, env=env, timeout=TOOL_TIMEOUT * 3)
    except subprocess.TimeoutExpired:
        raise Failure(f"token set-up {command!r} did not finish within {TOOL_TIMEOUT * 3} s")
    if result.returncode != 0:
        raise Failure(f"token set-up {command!r} exited {result.returncode}")
    for name in ("rsa", "ec"):
        if not (pki / f"{name}.pem").exists():
            raise Failure(f"token set-up {command!r} left no {pki / (name + '.pem')}")
    return {}


def make_profile(work, pki, marionette_port):
    """A fresh Thunderbird profile: an NSS database with the test CA trusted for
    mail, and preferences for an unattended, offline run."""
    profile = work / "profile"
    profile.mkdir()
    run(["certutil", "-N", "-d", f"sql:{profile}", "--empty-password"])
    run(["certutil", "-A", "-d", f"sql:{profile}", "-n", "Signet Thunderbird Test CA",
         "-t", "C,C,C", "-i", pki / "ca.pem"])
    prefs = {
        "marionette.port": marionette_port,
        "mail.shell.checkDefaultClient": False,
        "mail.provider.suppress_dialog_on_startup": True,
        "mailnews.start_page.enabled": False,
        "app.update.disabledForTesting": True,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.reportingpolicy.firstRun": False,
        "security.OCSP.enabled": 0,
        "network.dns.disablePrefetch": True,
        "extensions.update.enabled": False,
    }
    lines = []
    for name, value in prefs.items():
        literal = "true" if value is True else "false" if value is False else repr(value)
        lines.append(f'user_pref("{name}", {literal});')
    (profile / "user.js").write_text("\n".join(lines) + "\n")
    return profile


def register_module(profile, name, path, env):
    """Registers the PKCS#11 module in the profile's NSS database before
    Thunderbird starts. The one step to swap for `signet setup` once it exists."""
    run(["modutil", "-dbdir", f"sql:{profile}", "-add", name, "-libfile", path, "-force"], env=env)
    listing = run(["modutil", "-dbdir", f"sql:{profile}", "-list"], env=env).stdout.decode()
    if path not in listing:
        raise Failure(f"modutil did not list {path} after adding it:\n{listing}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Thunderbird


class Thunderbird:
    """One headless Thunderbird in its own process group, ended by stop()."""

    def __init__(self, binary, profile, port, env, log_path):
        self.log_file = open(log_path, "wb")
        self.process = subprocess.Popen(
            [binary, "--headless", "--marionette", "-remote-allow-system-access",
             "--profile", str(profile), "--no-remote"],
            env=env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self.port = port
        self.client = None

    def connect(self):
        from marionette_driver.marionette import Marionette
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failure(f"Thunderbird exited during start-up with status {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise Failure(f"Thunderbird's Marionette did not listen on port {self.port} within {STARTUP_TIMEOUT} s")
        self.client = Marionette(host="127.0.0.1", port=self.port, startup_timeout=STARTUP_TIMEOUT)
        self.client.start_session(timeout=STARTUP_TIMEOUT)
        self.client.timeout.script = SCRIPT_TIMEOUT
        self.client.set_context("chrome")

    def js(self, script, *args):
        """Runs privileged JavaScript in Thunderbird's chrome; `arguments` holds args.
        A script may return a Promise; its value comes back as JSON."""
        from marionette_driver import errors
        try:
            return self.client.execute_script(script, script_args=list(args), sandbox="system", new_sandbox=False)
        except errors.ScriptTimeoutException:
            raise Failure(f"a chrome script did not finish within {SCRIPT_TIMEOUT} s")
        except errors.MarionetteException as e:
            raise Failure(f"a chrome script failed: {e}")

    def stop(self):
        if self.client is not None:
            try:
                self.client.delete_session()
            except Exception:
                pass
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.log_file.close()


# ---------------------------------------------------------------------------
# Chrome scripts. Each is the body of a function; `arguments` are its inputs.

JS_FIND_TOKEN = """
const [modulePath, tokenLabel] = arguments;
return (async () => {
  const moduleDB = Cc["@mozilla.org/security/pkcs11moduledb;1"].getService(Ci.nsIPKCS11ModuleDB);
  const seen = [];
  for (const module of await moduleDB.listModules()) {
    seen.push(module.name + " (" + module.libName + ")");
    if (module.libName != modulePath) continue;
    for (const slot of module.slots) {
      if (slot.tokenName == tokenLabel) {
        const token = slot.getToken();
        return { found: true, module: module.name, slot: slot.name, loggedIn: token.isLoggedIn,
                 needsPassword: token.hasPassword };
      }
    }
    return { found: false, seen, slots: module.slots.map(s => s.name + ": " + s.tokenName) };
  }
  return { found: false, seen };
})();
"""

# Logs in through Thunderbird's own PIN prompt: token.login() opens the
# "Please authenticate to the security device" dialog; an observer of
# common-dialog-loaded types the PIN into it and presses OK, as a person would.
# The login runs from a timer so no Marionette command is in flight while the
# dialog is open (Marionette fails commands over an open prompt).
JS_START_LOGIN = """
const [modulePath, tokenLabel, pin] = arguments;
const state = { status: "pending", prompts: [] };
globalThis.signetLogin = state;
const observer = {
  observe(dialog) {
    const doc = dialog.document;
    state.prompts.push(doc.getElementById("infoBody")?.textContent || doc.title);
    const box = doc.getElementById("password1Textbox");
    // The PIN is typed once: a second prompt means it was wrong, and typing it
    // again would only spend the token's tries.
    if (box && pin !== null && state.prompts.length == 1) {
      box.value = pin;
      doc.querySelector("dialog").acceptDialog();
    } else {
      doc.querySelector("dialog").cancelDialog();
    }
  },
};
return (async () => {
  const moduleDB = Cc["@mozilla.org/security/pkcs11moduledb;1"].getService(Ci.nsIPKCS11ModuleDB);
  for (const module of await moduleDB.listModules()) {
    if (module.libName != modulePath) continue;
    for (const slot of module.slots) {
      if (slot.tokenName != tokenLabel) continue;
      const token = slot.getToken();
      if (token.isLoggedIn) { state.status = "already"; return state; }
      Services.obs.addObserver(observer, "common-dialog-loaded");
      setTimeout(() => {
        try {
          token.login(false);
          state.status = token.isLoggedIn ? "ok" : "not-logged-in";
        } catch (e) {
          state.status = "error: " + e;
        } finally {
          Services.obs.removeObserver(observer, "common-dialog-loaded");
        }
      }, 0);
      return state;
    }
  }
  state.status = "no-token";
  return state;
})();
"""

JS_LOGIN_STATE = "return globalThis.signetLogin;"

# Step 1: the token's certificates are the user's (USER_CERT: NSS found the
# private key for them), valid for S/MIME signing and as a recipient, and become
# the identity's signing and encryption certificates as am-e2e.js sets them.
JS_OWN_CERTS = """
const [tokenLabel, email] = arguments;
return (async () => {
  const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
  const certDB = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
  const verify = (cert, usage) => new Promise(resolve =>
    certDB.asyncVerifyCertAtTime(cert, usage, Ci.nsIX509CertDB.FLAG_LOCAL_ONLY, "",
                                 Math.floor(Date.now() / 1000), [], { verifyCertFinished: resolve }));
  const mine = [];
  for (const cert of await certDB.getCerts()) {
    if (cert.tokenName != tokenLabel || !cert.containsEmailAddress(email)) continue;
    mine.push({
      cert,
      info: {
        subject: cert.subjectName, tokenName: cert.tokenName, dbKey: cert.dbKey,
        isUserCert: cert.certType == Ci.nsIX509Cert.USER_CERT,
        signerStatus: await verify(cert, Ci.nsIX509CertDB.verifyUsageEmailSigner),
        recipientStatus: await verify(cert, Ci.nsIX509CertDB.verifyUsageEmailRecipient),
      },
    });
  }
  const rsa = mine.find(m => m.cert.commonName == "Alice Example");
  if (!rsa) return { certs: mine.map(m => m.info), identity: null };

  // A local account for the folders (Inbox, Outbox), an SMTP server that is never
  // contacted (messages are queued), and alice's identity with the token's RSA cert.
  let local;
  try { local = MailServices.accounts.localFoldersServer; } catch (e) {}
  if (!local) {
    MailServices.accounts.createLocalMailAccount();
    local = MailServices.accounts.localFoldersServer;
  }
  const smtp = MailServices.outgoingServer.createServer("smtp").QueryInterface(Ci.nsISmtpServer);
  smtp.hostname = "127.0.0.1";
  smtp.port = 9;
  smtp.authMethod = Ci.nsMsgAuthMethod.none;
  const identity = MailServices.accounts.createIdentity();
  identity.fullName = "Alice Example";
  identity.email = email;
  identity.smtpServerKey = smtp.key;
  const certName = rsa.cert.displayName + " [" + rsa.cert.serialNumber + "]";
  identity.setUnicharAttribute("signing_cert_name", certName);
  identity.setCharAttribute("signing_cert_dbkey", rsa.cert.dbKey);
  identity.setUnicharAttribute("encryption_cert_name", certName);
  identity.setCharAttribute("encryption_cert_dbkey", rsa.cert.dbKey);
  identity.setBoolAttribute("sign_mail", true);
  const server = MailServices.accounts.createIncomingServer("alice", "localhost", "none");
  const account = MailServices.accounts.createAccount();
  account.incomingServer = server;
  account.addIdentity(identity);
  return {
    certs: mine.map(m => m.info),
    identity: {
      key: identity.key,
      signing_cert_dbkey: identity.getCharAttribute("signing_cert_dbkey"),
      encryption_cert_dbkey: identity.getCharAttribute("encryption_cert_dbkey"),
      signing_cert_name: identity.getUnicharAttribute("signing_cert_name"),
    },
  };
})();
"""

# Step 2: compose and queue a signed message (nsMsgQueueForLater: into Local
# Folders' "Unsent Messages", no network), then read it back from the folder.
JS_SEND_SIGNED = """
const [identityKey, to, subject, body] = arguments;
return (async () => {
  const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
  const identity = MailServices.accounts.getIdentity(identityKey);
  const fields = Cc["@mozilla.org/messengercompose/composefields;1"].createInstance(Ci.nsIMsgCompFields);
  fields.from = identity.fullName + " <" + identity.email + ">";
  fields.to = to;
  fields.subject = subject;
  fields.body = body;
  const secure = Cc["@mozilla.org/messengercompose/composesecure;1"].createInstance(Ci.nsIMsgComposeSecure);
  secure.signMessage = true;
  secure.requireEncryptMessage = false;
  fields.composeSecure = secure;
  const params = Cc["@mozilla.org/messengercompose/composeparams;1"].createInstance(Ci.nsIMsgComposeParams);
  params.composeFields = fields;
  params.identity = identity;
  params.format = Ci.nsIMsgCompFormat.PlainText;
  const compose = MailServices.compose.initCompose(params);
  compose.type = Ci.nsIMsgCompType.New;
  const report = { stopStatus: null, notPerformed: null, error: null };
  compose.addMsgSendListener({
    onStartSending() {}, onSendProgress() {}, onStatus() {}, onGetDraftFolderURI() {},
    onTransportSecurityError() {},
    onSendNotPerformed(id, status) { report.notPerformed = status; },
    onStopSending(id, status, message) { report.stopStatus = status; report.message = message; },
    QueryInterface: ChromeUtils.generateQI(["nsIMsgSendListener"]),
  });
  const progress = Cc["@mozilla.org/messenger/progress;1"].createInstance(Ci.nsIMsgProgress);
  try {
    await compose.sendMsg(Ci.nsIMsgSend.nsMsgQueueForLater, identity, "", progress);
  } catch (e) {
    report.error = String(e);
    return report;
  }
  const outbox = MailServices.accounts.localFoldersServer.rootFolder.getChildNamed("Unsent Messages");
  const hdr = [...outbox.messages].find(h => h.mime2DecodedSubject == subject);
  if (!hdr) { report.error = "no message with that subject in " + outbox.URI; return report; }
  const stream = outbox.getMsgInputStream(hdr);
  report.raw = NetUtil.readInputStreamToString(stream, hdr.messageSize);
  stream.close();
  return report;
})();
"""

# Step 3: copy message files into the local Inbox (nsIMsgCopyService.
# copyFileMessage) and render each through Thunderbird's MIME converter
# (message/rfc822 -> text/html, as the message pane does) with an
# nsIMsgSMIMESink on the channel to collect the S/MIME status.
JS_READ_MESSAGES = """
const [paths] = arguments;
return (async () => {
  const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
  const root = MailServices.accounts.localFoldersServer.rootFolder.QueryInterface(Ci.nsIMsgLocalMailFolder);
  let inbox = null;
  try { inbox = root.getChildNamed("Inbox"); } catch (e) {}
  if (!inbox) {
    inbox = root.createLocalSubfolder("Inbox");
    inbox.setFlag(Ci.nsMsgFolderFlags.Mail);
  }
  const results = [];
  for (const path of paths) {
    const before = new Set([...inbox.messages].map(h => h.messageKey));
    await new Promise((resolve, reject) => {
      MailServices.copy.copyFileMessage(new FileUtils.File(path), inbox, null, false, 0, "", {
        onStartCopy() {}, onProgress() {}, setMessageKey() {}, getMessageId() { return ""; },
        onStopCopy(status) {
          Components.isSuccessCode(status) ? resolve() : reject(new Error("copy of " + path + " failed: " + status));
        },
        QueryInterface: ChromeUtils.generateQI(["nsIMsgCopyServiceListener"]),
      }, null);
    });
    const hdr = [...inbox.messages].find(h => !before.has(h.messageKey));
    const uri = inbox.getUriForMsg(hdr);
    const result = { path, subject: hdr.mime2DecodedSubject, encryption: [], signature: [] };
    const sink = {
      signedStatus(level, status) { result.signature.push(status); },
      encryptionStatus(level, status) { result.encryption.push(status); },
      ignoreStatusFrom() {}, resetSignedStatus() {}, signatureProcessingStarted() {},
      QueryInterface: ChromeUtils.generateQI(["nsIMsgSMIMESink"]),
    };
    const url = MailServices.messageServiceFromURI(uri).getUrlForUri(uri);
    const channel = Services.io.newChannelFromURI(url, null,
        Services.scriptSecurityManager.getSystemPrincipal(), null,
        Ci.nsILoadInfo.SEC_ALLOW_CROSS_ORIGIN_SEC_CONTEXT_IS_NULL, Ci.nsIContentPolicy.TYPE_OTHER)
      .QueryInterface(Ci.nsIMailChannel);
    channel.smimeSink = sink;
    result.html = await new Promise((resolve, reject) => {
      let data = "";
      const listener = {
        onStartRequest() {},
        onDataAvailable(request, stream, offset, count) {
          data += NetUtil.readInputStreamToString(stream, count, { charset: "UTF-8" });
        },
        onStopRequest(request, status) {
          Components.isSuccessCode(status) ? resolve(data) : reject(new Error("rendering failed: " + status));
        },
        QueryInterface: ChromeUtils.generateQI(["nsIStreamListener"]),
      };
      const converter = Cc["@mozilla.org/streamConverters;1"].getService(Ci.nsIStreamConverterService)
        .asyncConvertData("message/rfc822", "text/html", listener, channel);
      channel.asyncOpen(converter);
    });
    results.push(result);
  }
  return results;
})();
"""


# ---------------------------------------------------------------------------
# The test


class Timer:
    def __init__(self):
        self.start = time.monotonic()
        self.marks = []

    def mark(self, name):
        now = time.monotonic()
        last = self.marks[-1][2] if self.marks else self.start
        self.marks.append((name, now - last, now))

    def summary(self):
        parts = [f"{name} {seconds:.1f} s" for name, seconds, _ in self.marks]
        return ", ".join(parts) + f"; total {time.monotonic() - self.start:.1f} s"


def login(tb, module, label, pin):
    state = tb.js(JS_START_LOGIN, module, label, pin)
    deadline = time.monotonic() + SCRIPT_TIMEOUT
    while state["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.3)
        state = tb.js(JS_LOGIN_STATE)
    if state["status"] == "pending":
        raise Failure(f"token login did not finish within {SCRIPT_TIMEOUT} s (prompts: {state['prompts']})")
    if state["status"] not in ("ok", "already"):
        if pin is None and state["prompts"]:
            hint = " (Thunderbird asked for a PIN and none was given: --pin, or log the token in first)"
        elif len(state["prompts"]) > 1:
            hint = " (Thunderbird asked again after the PIN was typed: a wrong PIN)"
        else:
            hint = ""
        raise Failure(f"token login: {state['status']}; prompts seen: {state['prompts']}{hint}")
    return state


def encrypt(pki, work, name, recipient, text, extra=()):
    """An S/MIME enveloped message from bob to alice, made by OpenSSL."""
    body = work / f"{name}.body"
    body.write_text(f"Content-Type: text/plain; charset=UTF-8\n\n{text}\n")
    enveloped = run(["openssl", "cms", "-encrypt", "-aes256", "-in", body, "-recip", pki / f"{recipient}.pem", *extra]).stdout
    message = work / f"{name}.eml"
    message.write_bytes(
        f"From: Bob <bob@example.org>\nTo: Alice Example <{EMAIL}>\nSubject: {name}\n".encode() + enveloped)
    return message


def check(condition, message):
    if not condition:
        raise Failure(message)
    log("ok: " + message)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", default=SOFTHSM, help="PKCS#11 module Thunderbird loads (default: SoftHSM2)")
    parser.add_argument("--module-name", default="Signet test token", help="its name in the NSS module list")
    parser.add_argument("--token-label", default="Signet TB", help="label of the SoftHSM2 token this makes")
    parser.add_argument("--pin", default="123456", help="token PIN typed into Thunderbird's prompt")
    parser.add_argument("--no-pin", action="store_true",
                        help="give Thunderbird no PIN: the token must be logged in already (signet unlock)")
    parser.add_argument("--token-setup", default="softhsm", help='"softhsm" or a shell command (see external_token_setup)')
    parser.add_argument("--register", default="modutil", help='"modutil" or a shell command that registers MODULE in PROFILE')
    parser.add_argument("--ecdh", choices=("require", "known-failure"),
                        help="whether ECDH decryption must work; default: known-failure for SoftHSM2 loaded directly "
                             "(NSS asks the token for CKM_ECDH1_DERIVE with CKD_SHA256_KDF, which SoftHSM2 2.6 rejects), "
                             "require otherwise")
    parser.add_argument("--thunderbird", default="thunderbird")
    parser.add_argument("--work", help="working directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()

    try:
        import marionette_driver  # noqa: F401
    except ImportError:
        print("tb_smime: marionette_driver is missing; run scripts/setup-debian", file=sys.stderr)
        return 2
    for tool in (args.thunderbird, "openssl", "certutil", "modutil", "softhsm2-util", "pkcs11-tool"):
        if shutil.which(tool) is None:
            print(f"tb_smime: {tool} is missing; run scripts/setup-debian", file=sys.stderr)
            return 2

    # A time-out from outside (Tests/thunderbird/run) sends SIGTERM: leave through
    # the finally below, so Thunderbird is ended too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="signet-tb-"))
    work.mkdir(parents=True, exist_ok=True)
    pin = None if args.no_pin else args.pin
    ecdh = args.ecdh or ("known-failure" if os.path.realpath(args.module) == os.path.realpath(SOFTHSM) else "require")
    timer = Timer()
    tb = None
    status = 0
    try:
        pki = make_pki(work)
        if args.token_setup == "softhsm":
            extra_env = make_softhsm_token(work, pki, args.token_label, args.pin)
        else:
            extra_env = external_token_setup(args.token_setup, work, pki, args.token_label, args.pin)
        env = dict(os.environ, **extra_env)
        port = free_port()
        profile = make_profile(work, pki, port)
        if args.register == "modutil":
            register_module(profile, args.module_name, args.module, env)
        else:
            hook_env = dict(env, PROFILE=str(profile), MODULE=args.module, MODULE_NAME=args.module_name)
            try:
                subprocess.run(args.register, shell=True, env=hook_env, check=True, timeout=TOOL_TIMEOUT)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                raise Failure(f"module registration {args.register!r}: {e}")
        messages = {
            "rsa": encrypt(pki, work, "to-alice-rsa", "rsa", RSA_SECRET),
            # dhSinglePass-stdDH-sha256kdf-scheme with AES-256 key wrap, as Thunderbird's own
            # interop data (fran-ec_ossl-*.env) is made.
            "ec": encrypt(pki, work, "to-alice-ec", "ec", EC_SECRET, ("-keyopt", "ecdh_kdf_md:sha256")),
            "stranger": encrypt(pki, work, "to-mallory", "stranger", STRANGER_SECRET),
        }
        timer.mark("setup")

        tb = Thunderbird(args.thunderbird, profile, port, env, work / "thunderbird.log")
        tb.connect()
        timer.mark("start")

        # 1. The token's certificate is alice's own.
        token = tb.js(JS_FIND_TOKEN, args.module, args.token_label)
        check(token["found"], f"Thunderbird lists token {args.token_label!r} in module {args.module} ({token})")
        state = login(tb, args.module, args.token_label, pin)
        check(True, f"token logged in ({state['status']}; prompts: {state['prompts']})")
        own = tb.js(JS_OWN_CERTS, args.token_label, EMAIL)
        certs = {c["subject"]: c for c in own["certs"]}
        log(f"certificates for {EMAIL} on the token: {list(certs)}")
        check(len(certs) == 2, f"both of alice's certificates (RSA, EC) are on the token as Thunderbird sees it")
        for subject, cert in certs.items():
            check(cert["isUserCert"], f"{subject} is a user certificate (Thunderbird found its private key)")
            check(cert["signerStatus"] == 0 and cert["recipientStatus"] == 0,
                  f"{subject} verifies for S/MIME signing and encryption against the test CA "
                  f"(signer {cert['signerStatus']}, recipient {cert['recipientStatus']})")
        check(own["identity"] is not None and own["identity"]["signing_cert_dbkey"],
              f"identity {own['identity'] and own['identity']['key']} signs and encrypts with the token's RSA certificate")
        timer.mark("certificates")

        # 2. Sign.
        body = "Hello Bob,\r\nthis message was signed by a key that never left the token.\r\n"
        sent = tb.js(JS_SEND_SIGNED, own["identity"]["key"], "Bob <bob@example.org>", "signed on the token", body)
        check(sent.get("error") is None and sent.get("raw"), f"Thunderbird queued a signed message ({ {k: v for k, v in sent.items() if k != 'raw'} })")
        raw = sent["raw"]
        signed = work / "signed.eml"
        signed.write_text(raw)
        check("multipart/signed" in raw and "application/pkcs7-signature" in raw,
              "the queued message is multipart/signed with an application/pkcs7-signature part")
        verified = run(["openssl", "cms", "-verify", "-in", signed, "-CAfile", pki / "ca.pem", "-purpose", "smimesign"], check=False)
        check(verified.returncode == 0 and b"signed by a key that never left the token" in verified.stdout,
              "openssl cms -verify accepts Thunderbird's signature against the test CA")
        signer = run(["openssl", "cms", "-verify", "-in", signed, "-CAfile", pki / "ca.pem", "-signer", work / "signer.pem",
                      "-out", os.devnull]).returncode
        same = run(["openssl", "x509", "-in", work / "signer.pem", "-noout", "-fingerprint", "-sha256"]).stdout == \
            run(["openssl", "x509", "-in", pki / "rsa.pem", "-noout", "-fingerprint", "-sha256"]).stdout
        check(signer == 0 and same, "the signer is the token's RSA certificate")
        tampered = work / "signed-tampered.eml"
        tampered.write_text(raw.replace("never left the token", "never left the tokem"))
        rejected = run(["openssl", "cms", "-verify", "-in", tampered, "-CAfile", pki / "ca.pem", "-out", os.devnull], check=False)
        check(rejected.returncode != 0, "control: openssl cms -verify rejects a tampered copy of the message")
        timer.mark("sign")

        # 3. Decrypt.
        read = tb.js(JS_READ_MESSAGES, [str(messages[k]) for k in ("rsa", "ec", "stranger")])
        by_name = {Path(r["path"]).stem: r for r in read}
        failures = []
        notes = []
        for name, secret in (("to-alice-rsa", RSA_SECRET), ("to-alice-ec", EC_SECRET)):
            r = by_name[name]
            ok = r["encryption"] == [0] and secret in r["html"]
            if name == "to-alice-ec" and ecdh == "known-failure":
                if ok:
                    notes.append(f"{name} decrypted although expected not to with this module: use --ecdh require")
                    log(f"ok: Thunderbird decrypted {name} with the token's key (status {r['encryption']})")
                else:
                    notes.append(f"KNOWN LIMITATION: {name} did not decrypt (status {r['encryption']}): NSS derives "
                                 "the key-encryption key on the token with C_DeriveKey(CKM_ECDH1_DERIVE, "
                                 "kdf=CKD_SHA256_KDF) and SoftHSM2 answers CKR_MECHANISM_PARAM_INVALID "
                                 "(it takes only CKD_NULL)")
                continue
            if ok:
                log(f"ok: Thunderbird decrypted {name} with the token's key (status {r['encryption']})")
            else:
                failures.append(f"{name}: encryption status {r['encryption']}, secret "
                                f"{'shown' if secret in r['html'] else 'not shown'}")
        r = by_name["to-mallory"]
        check(r["encryption"] and r["encryption"][0] != 0 and STRANGER_SECRET not in r["html"],
              f"control: a message to a certificate not on the token does not decrypt (status {r['encryption']})")
        timer.mark("decrypt")
        for note in notes:
            log(note)
        if failures:
            raise Failure("decryption: " + "; ".join(failures))
        log("PASS: " + timer.summary())
    except Failure as e:
        print(f"tb_smime: FAIL: {e}", file=sys.stderr)
        print(f"tb_smime: timings so far: {timer.summary()}; files in {work}", file=sys.stderr)
        status = 1
    except subprocess.CalledProcessError as e:
        print(f"tb_smime: FAIL: {e}", file=sys.stderr)
        status = 1
    finally:
        if tb is not None:
            tb.stop()
        if status == 0 and not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
        elif status != 0 or args.keep:
            print(f"tb_smime: kept {work} (thunderbird.log, signed.eml, pki/)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
