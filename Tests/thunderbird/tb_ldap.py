"""A real, headless Thunderbird reads the same directory as Signet (issue 27): the test slapd, configured as an
LDAP address book (ldap_2.servers.signet), and Thunderbird's own certificate fetching for encryption
(certFetchingStatus.xhtml, what compose opens for a recipient without a certificate: it searches (mail=ADDRESS)
for usercertificate;binary and imports what it finds). Then the certificate must be in Thunderbird's NSS database
for that address and verify there as an email recipient (NSS's own check, against the test CA).

Usage: tb_ldap.py --ldap-uri ldap://127.0.0.1:PORT/BASE --pki DIR(with ca.pem) --email ADDRESS --expect-sha256 HEX
Exit status 0 when Thunderbird found exactly that certificate; prints what it found.
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import tb_smime as tb  # noqa: E402  (the harness: profile, Thunderbird under Marionette)

JS_FETCH = """
const [pref, email] = arguments;
return (async () => {
  // The main window fully loaded first: the dialog opened during start-up closed at once, having searched nothing.
  const ready = Date.now() + 30000;
  let win = Services.wm.getMostRecentWindow("mail:3pane");
  while ((!win || win.document.readyState != "complete" || !win.gMailInit?.delayedStartupFinished) && Date.now() < ready) {
    await new Promise(r => setTimeout(r, 100));
    win = Services.wm.getMostRecentWindow("mail:3pane");
  }
  const messages = [];
  const listener = { observe: m => messages.push(String(m.message ?? m).slice(0, 300)) };
  Services.console.registerListener(listener);
  const dialog = win.openDialog("chrome://messenger-smime/content/certFetchingStatus.xhtml", "",
                                "chrome,resizable=1,dialog=1", pref, [email]);
  const deadline = Date.now() + 20000;
  while (!dialog.closed && Date.now() < deadline) await new Promise(r => setTimeout(r, 100));
  const certDB = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
  const verify = cert => new Promise(resolve =>
    certDB.asyncVerifyCertAtTime(cert, Ci.nsIX509CertDB.verifyUsageEmailRecipient, Ci.nsIX509CertDB.FLAG_LOCAL_ONLY, "",
                                 Math.floor(Date.now() / 1000), [], { verifyCertFinished: resolve }));
  // The import is the dialog's last act; under load the database may show it a moment later: wait for it (5 s).
  let mine = [];
  const seen = Date.now() + 5000;
  do {
    mine = (await certDB.getCerts()).filter(cert => cert.containsEmailAddress(email));
    if (!mine.length) await new Promise(r => setTimeout(r, 100));
  } while (!mine.length && Date.now() < seen);
  const found = [];
  for (const cert of mine) {
    found.push({ subject: cert.subjectName, sha256: cert.sha256Fingerprint.replace(/:/g, "").toLowerCase(),
                 recipientStatus: await verify(cert) });
  }
  Services.console.unregisterListener(listener);
  return { dialogClosed: dialog.closed, found, windowReady: !!win?.gMailInit?.delayedStartupFinished,
           console: messages.filter(m => /ldap|LDAP|cert/.test(m)).slice(0, 10) };
})();
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ldap-uri", required=True)
    parser.add_argument("--pki", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--expect-sha256", required=True)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="signet-tb-ldap-"))
    port = tb.free_port()
    profile = tb.make_profile(work, pathlib.Path(args.pki), port)
    with open(profile / "user.js", "a") as prefs:
        # The directory as a user adds it (Address Book → New LDAP Directory), and as the address book used for compose.
        prefs.write(f'user_pref("ldap_2.servers.signet.uri", "{args.ldap_uri}??sub?(objectclass=*)");\n')
        prefs.write('user_pref("ldap_2.servers.signet.description", "Signet test directory");\n')
        prefs.write('user_pref("ldap_2.servers.signet.dirType", 0);\n')
        prefs.write('user_pref("ldap_2.autoComplete.useDirectory", true);\n')
        prefs.write('user_pref("ldap_2.autoComplete.directoryServer", "ldap_2.servers.signet");\n')
    thunderbird = tb.Thunderbird(shutil.which("thunderbird"), profile, port, os.environ.copy(), work / "thunderbird.log")
    try:
        thunderbird.connect()
        result = thunderbird.js(JS_FETCH, "ldap_2.servers.signet", args.email)
    finally:
        thunderbird.stop()
    print(json.dumps(result, indent=1))
    matches = [c for c in result["found"] if c["sha256"] == args.expect_sha256.lower()]
    if not result["dialogClosed"]:
        print("Thunderbird's certificate fetching did not finish within 20 s", file=sys.stderr)
        return 1
    if len(matches) != 1 or matches[0]["recipientStatus"] != 0:
        print(f"Thunderbird did not take the directory's certificate {args.expect_sha256} for {args.email} as a recipient",
              file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
