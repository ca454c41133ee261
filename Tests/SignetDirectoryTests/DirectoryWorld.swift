import Foundation
import SignetTestSupport

/// A throw-away organisation for the directory tests: a CA (made with `openssl ca`, whose index.txt the OCSP
/// responder reads), an untrusted CA, colleagues' certificates, and a real OpenLDAP `slapd` on 127.0.0.1 with a
/// configuration and database of its own (plain LDAP with StartTLS, and ldaps://, with a server certificate from
/// a test CA), started by the test and killed when it ends. Ports come from 41600-41699 (each suite has its own; the suites run serialised).
final class DirectoryWorld {
    let peer: OpenSSLPeer
    let home: URL
    let environment: [String: String]
    let ldapPort: Int
    let ldapsPort: Int
    private(set) var slapd: pid_t = 0
    /// The write end of the pipe that keeps slapd alive (see `spawnTied`).
    private var keeper: Int32 = -1
    var dir: String { peer.directory.path }
    var slapdLog: String { peer.path("slapd.log") }
    var configFile: String { home.appendingPathComponent("config/signet/config").path }
    var signet: String { TestPaths.binaries.appendingPathComponent("signet").path }
    static let base = "dc=example,dc=org"
    static let ocspPort = 41620
    static let stalledPort = 41621
    static let floodPort = 41622
    /// Named as an OCSP responder where nothing listens, and the CRL's HTTP server (OCSPTests.crlFallback).
    static let deadPort = 41623
    static let crlPort = 41624

    /// The Kerberos realm slapd accepts GSSAPI binds from, when there is one.
    let kerberos: KerberosRealm?

    /// - Parameters:
    ///   - tls: configure slapd with a server certificate (StartTLS and ldaps://); without it, plain LDAP only.
    ///   - kerberos: accept SASL GSSAPI binds from this realm, as ldap/127.0.0.1, mapping principal NAME to uid=NAME.
    init(tls: Bool = true, ports: (Int, Int) = (41601, 41602), kerberos: KerberosRealm? = nil) throws {
        self.kerberos = kerberos
        peer = try OpenSSLPeer()
        home = try TestPaths.temporaryDirectory("signet-directory-home")
        environment = TestPaths.userEnvironment(home: home)
        (ldapPort, ldapsPort) = ports
        try FileManager.default.createDirectory(atPath: home.appendingPathComponent("config/signet").path, withIntermediateDirectories: true)
        try makePKI()
        try startSlapd(tls: tls)
    }

    deinit { stopSlapd() }

    // MARK: The PKI.

    func openssl(_ arguments: [String]) throws { try Run.checked("openssl", arguments) }

    /// A self-signed CA `name` (EC P-256) with its own `openssl ca` database.
    func makeCA(_ name: String, subject: String) throws {
        try FileManager.default.createDirectory(atPath: peer.path("\(name)-certs"), withIntermediateDirectories: true)
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "60", "-subj", subject,
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                     "-keyout", peer.path("\(name).key"), "-out", peer.path("\(name).pem")])
        _ = try peer.file("\(name)-index.txt", text: "")
        _ = try peer.file("\(name)-serial", text: "1000\n")
        _ = try peer.file("\(name).cnf", text: """
            [ca]
            default_ca = d
            [d]
            database = \(peer.path("\(name)-index.txt"))
            new_certs_dir = \(peer.path("\(name)-certs"))
            serial = \(peer.path("\(name)-serial"))
            certificate = \(peer.path("\(name).pem"))
            private_key = \(peer.path("\(name).key"))
            default_md = sha256
            policy = any
            unique_subject = no
            default_days = 30
            default_crl_days = 30
            [any]
            commonName = supplied
            """)
    }

    /// A person's certificate `name` from `ca`: RSA key (so `openssl cms -decrypt` reads what Signet wrote to it),
    /// `emails` in the subjectAltName, usable for encryption unless `usage` says otherwise, within the given dates.
    @discardableResult
    func issue(_ name: String, by ca: String = "ca", cn: String, emails: [String], usage: String = "digitalSignature,keyEncipherment",
               start: String? = nil, end: String? = nil, extra: String = "") throws -> String {
        try openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=\(cn)", "-keyout", peer.path("\(name).key"),
                     "-out", peer.path("\(name).csr")])
        let ext = try peer.file("\(name).ext", text: """
            basicConstraints=CA:FALSE
            keyUsage=critical,\(usage)
            extendedKeyUsage=emailProtection
            subjectAltName=\(emails.map { "email:" + $0 }.joined(separator: ","))
            \(extra)
            """)
        var arguments = ["ca", "-batch", "-notext", "-config", peer.path("\(ca).cnf"), "-in", peer.path("\(name).csr"), "-out", peer.path("\(name).pem"),
                         "-extfile", ext]
        if let start { arguments += ["-startdate", start] }
        if let end { arguments += ["-enddate", end] }
        try openssl(arguments)
        try openssl(["x509", "-in", peer.path("\(name).pem"), "-outform", "DER", "-out", peer.path("\(name).der")])
        return peer.path("\(name).pem")
    }

    func der(_ name: String) throws -> String { Data(try peer.read("\(name).der")).base64EncodedString() }

    /// The SHA-256 id Signet prints for certificate `name` (its first 16 hex digits).
    func id(_ name: String) throws -> String {
        let out = try Run.checked("openssl", ["x509", "-in", peer.path("\(name).pem"), "-noout", "-fingerprint", "-sha256"]).output
        return String(out.split(separator: "=")[1].filter { $0 != ":" && $0 != "\n" }.lowercased().prefix(16))
    }

    private func makePKI() throws {
        try makeCA("ca", subject: "/O=Example Org/CN=Example Mail CA")
        try makeCA("rogue", subject: "/O=Elsewhere/CN=Untrusted CA")
        try makeCA("server-ca", subject: "/O=Example Org/CN=Example Server CA")
        // The directory's TLS certificate, for 127.0.0.1 (by IP address and by name).
        try openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
                     "-keyout", peer.path("server.key"), "-out", peer.path("server.csr")])
        let serverExt = try peer.file("server.ext", text: "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        try openssl(["ca", "-batch", "-notext", "-config", peer.path("server-ca.cnf"), "-in", peer.path("server.csr"), "-out", peer.path("server.pem"),
                     "-extfile", serverExt])
        chmod(peer.path("server.key"), 0o644)  // slapd runs as this user; the key is a throw-away test key

        try issue("alice", cn: "Alice Colleague", emails: ["alice@example.org"])
        try issue("bob-old", cn: "Bob Colleague", emails: ["bob@example.org"], start: "20200101000000Z", end: "20210101000000Z")
        try issue("bob", cn: "Bob Colleague", emails: ["bob@example.org"])
        try issue("carol", by: "rogue", cn: "Carol Colleague", emails: ["carol@example.org"])
        try issue("dave", cn: "Dave Smith", emails: ["dave@example.org", "d.smith@example.org"])
        try issue("erin", cn: "Erin Colleague", emails: ["erin@example.org"])
        // Certificates naming OCSP responders on loopback (OCSPTests starts them): good, revoked, stalled, flooding.
        let aia = { (port: Int) in "authorityInfoAccess=OCSP;URI:http://127.0.0.1:\(port)" }
        try issue("frank", cn: "Frank Colleague", emails: ["frank@example.org"], extra: aia(Self.ocspPort))
        try openssl(["ca", "-config", peer.path("ca.cnf"), "-revoke", peer.path("frank.pem"), "-crl_reason", "keyCompromise"])
        try issue("olivia", cn: "Olivia Colleague", emails: ["olivia@example.org"], extra: aia(Self.ocspPort))
        try issue("stella", cn: "Stella Colleague", emails: ["stella@example.org"], extra: aia(Self.stalledPort))
        try issue("hugo", cn: "Hugo Colleague", emails: ["hugo@example.org"], extra: aia(Self.floodPort))
        try issue("grace", cn: "Grace Colleague", emails: ["grace@example.org"], usage: "digitalSignature")
        // Erin's userSMIMECertificate: a PKCS#7 SignedData (certs-only) with her certificate and the CA, as Outlook stores it.
        try openssl(["crl2pkcs7", "-nocrl", "-certfile", peer.path("erin.pem"), "-certfile", peer.path("ca.pem"), "-outform", "DER",
                     "-out", peer.path("erin.p7b")])
    }

    // MARK: slapd.

    /// The entries: the people of the issue, and an entry to publish to.
    func ldif() throws -> String {
        func person(_ uid: String, _ cn: String, mail: String, _ lines: [String]) -> String {
            "dn: uid=\(uid),ou=people,\(Self.base)\nobjectClass: inetOrgPerson\nobjectClass: signetTestMailRecipient\nuid: \(uid)\ncn: \(cn)\nsn: \(cn.split(separator: " ").last!)\n"
                + "mail: \(mail)\n" + lines.map { $0 + "\n" }.joined() + "\n"
        }
        return "dn: \(Self.base)\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example Org\n\n"
            + "dn: ou=people,\(Self.base)\nobjectClass: organizationalUnit\nou: people\n\n"
            + person("alice", "Alice Colleague", mail: "alice@example.org", ["userCertificate;binary:: \(try der("alice"))"])
            + person("bob", "Bob Colleague", mail: "bob@example.org",
                     ["userCertificate;binary:: \(try der("bob-old"))", "userCertificate;binary:: \(try der("bob"))"])
            + person("carol", "Carol Colleague", mail: "carol@example.org", ["userCertificate;binary:: \(try der("carol"))"])
            + person("dave", "Dave Smith", mail: "dave@example.org",
                     ["proxyAddresses: SMTP:dave@example.org", "proxyAddresses: smtp:d.smith@example.org", "userCertificate;binary:: \(try der("dave"))"])
            + person("erin", "Erin Colleague", mail: "erin@example.org", ["userSMIMECertificate:: \(Data(try peer.read("erin.p7b")).base64EncodedString())"])
            + person("frank", "Frank Colleague", mail: "frank@example.org", ["userCertificate;binary:: \(try der("frank"))"])
            + person("grace", "Grace Colleague", mail: "grace@example.org", ["userCertificate;binary:: \(try der("grace"))"])
            + person("me", "Me Myself", mail: "me@example.org", ["userPassword: my-directory-password"])
    }

    private func startSlapd(tls: Bool) throws {
        let db = peer.path("db")
        try FileManager.default.createDirectory(atPath: db, withIntermediateDirectories: true)
        // proxyAddresses as Active Directory defines it (its OID), and an auxiliary class to carry it: not in OpenLDAP's schemas.
        let schema = try peer.file("test.schema", text: """
            attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
                SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
            objectclass ( 1.3.6.1.4.1.4203.666.11.27.1 NAME 'signetTestMailRecipient' SUP top AUXILIARY MAY ( proxyAddresses ) )

            """)
        // GSSAPI: slapd's SASL host is the name in the service principal (ldap/127.0.0.1), and an authenticated
        // principal NAME@REALM (uid=NAME,cn=REALM,cn=gssapi,cn=auth to slapd) is the entry uid=NAME under ou=people.
        let sasl = kerberos.map { realm in
            "sasl-host 127.0.0.1\nsasl-realm \(realm.realm)\n"
                + "authz-regexp \"uid=([^,]+),cn=\(realm.realm.lowercased()),cn=gssapi,cn=auth\" \"uid=$1,ou=people,\(Self.base)\"\n"
        } ?? ""
        let config = try peer.file("slapd.conf", text: """
            include /etc/ldap/schema/core.schema
            include /etc/ldap/schema/cosine.schema
            include /etc/ldap/schema/inetorgperson.schema
            include \(schema)
            pidfile \(peer.path("slapd.pid"))
            modulepath /usr/lib/ldap
            moduleload back_mdb
            \(sasl)\(tls ? "TLSCACertificateFile \(peer.path("server-ca.pem"))\nTLSCertificateFile \(peer.path("server.pem"))\nTLSCertificateKeyFile \(peer.path("server.key"))" : "")
            database mdb
            maxsize 10485760
            suffix "\(Self.base)"
            rootdn "cn=admin,\(Self.base)"
            rootpw admin-secret
            directory \(db)
            access to attrs=userPassword by self write by anonymous auth by * none
            access to * by self write by * read

            """)
        try Run.checked("/usr/sbin/slapadd", ["-f", config, "-l", try peer.file("entries.ldif", text: try ldif())])
        let urls = "ldap://127.0.0.1:\(ldapPort)/" + (tls ? " ldaps://127.0.0.1:\(ldapsPort)/" : "")
        // -d stats: in the foreground, logging each operation (the filter of every search) to its log. Under a shell that
        // kills it when its standard input closes: when this test process ends, even by a crash, so does slapd.
        // With Kerberos: the realm's krb5.conf, and the keytab with ldap/127.0.0.1's key.
        let kerberosEnvironment = kerberos.map { ["/usr/bin/env", "KRB5_CONFIG=\($0.krb5Config)", "KRB5_KTNAME=FILE:\($0.serviceKeytab)"] } ?? []
        (slapd, keeper) = try Self.spawnTied(kerberosEnvironment + ["/usr/sbin/slapd", "-f", config, "-h", urls, "-d", "stats"], log: slapdLog)
        // Ours listening, not a slapd another run left on the port: slapd logs "slapd starting" once its listeners are open,
        // and exits when a port is taken.
        var exited = false
        let ready = eventually(timeout: .seconds(20)) {
            var status: Int32 = 0
            if waitpid(slapd, &status, WNOHANG) == slapd { exited = true; return true }
            return ((try? String(contentsOfFile: slapdLog, encoding: .utf8)) ?? "").contains("slapd starting")
        }
        if exited { slapd = 0 }
        guard ready, !exited else { throw TestFailure("slapd did not start within 20 s: \((try? String(contentsOfFile: slapdLog, encoding: .utf8)) ?? "")") }
    }

    func stopSlapd() {
        defer { if keeper >= 0 { close(keeper); keeper = -1 } }
        guard slapd > 0 else { return }
        // Closing the pipe makes the shell SIGKILL slapd (the test's threads block SIGTERM, and a spawned slapd would
        // inherit that mask; its database is thrown away).
        close(keeper)
        keeper = -1
        var status: Int32 = 0
        _ = eventually(timeout: .seconds(10)) { waitpid(slapd, &status, WNOHANG) == slapd }
        slapd = 0
    }

    // MARK: Signet.

    /// Writes the user's configuration and trusts the mail CA (as `signet trust add` would).
    func configure(_ lines: String, trustCA: Bool = true) throws {
        try lines.write(toFile: configFile, atomically: true, encoding: .utf8)
        if trustCA {
            let result = try run(["trust", "add", peer.path("ca.pem")])
            guard result.status == 0 || result.errors.contains("already") else { throw TestFailure("trust add: \(result.errors)") }
        }
    }

    func run(_ arguments: [String], timeout: TimeInterval = 60) throws -> Run.Result {
        try Run.command(signet, arguments, environment: environment, timeout: timeout)
    }

    /// An agent with a token "Mine", unlocked, and `config` as its configuration.
    func unlockedAgent(config: String, extraEnvironment: [String: String] = [:]) throws -> AgentFixture {
        let agent = try AgentFixture(config: config, extraEnvironment: extraEnvironment)
        try agent.start()
        try agent.makeToken("Mine", code: "1234-code")
        let unlocked = try agent.signet(["unlock", "--code-fd", "0"], stdin: "1234-code\n")
        guard unlocked.status == 0 else { agent.stop(); throw TestFailure("unlock: \(unlocked.errors)") }
        return agent
    }

    /// Certificate `pem` as DER, base64 (as ldapsearch shows a binary value).
    func derBase64(_ pem: String) throws -> String {
        let der = peer.path(UUID().uuidString + ".der")
        try Run.checked("openssl", ["x509", "-in", pem, "-outform", "DER", "-out", der])
        return try Data(contentsOf: URL(fileURLWithPath: der)).base64EncodedString()
    }

    /// The values of `attribute` of `entry`, base64, as ldapsearch (anonymous) shows them.
    func published(_ attribute: String, of entry: String) throws -> [String] {
        let result = try Run.checked("ldapsearch", ["-x", "-LLL", "-o", "ldif_wrap=no", "-H", "ldap://127.0.0.1:\(ldapPort)", "-b", entry,
                                                    "-s", "base", "(objectClass=*)", attribute])
        return result.output.split(separator: "\n").filter { $0.hasPrefix(attribute + ":: ") }.map { String($0.dropFirst(attribute.count + 3)) }
    }

    /// A key on `agent`'s token and its certificate from the world's CA for `email`, installed; returns the certificate's path.
    func enrol(_ agent: AgentFixture, _ name: String, email: String, id: String) throws -> String {
        func must(_ result: Run.Result, _ what: String) throws {
            guard result.status == 0 else { throw TestFailure("\(what) failed (\(result.status)): \(result.errors)") }
        }
        try must(agent.signet(["key", "generate", "--type", "rsa2048", "--label", name, "--id", id]), "key generate")
        try must(agent.signet(["csr", "--key", id, "--subject", "O=Example Org,CN=Me \(name)", "--email", email, "-o", peer.path("\(name).csr")]), "csr")
        let ext = try peer.file("\(name).ext", text: "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\n"
                                + "subjectAltName=email:\(email)\n")
        try must(Run.command("openssl", ["ca", "-batch", "-notext", "-config", peer.path("ca.cnf"), "-in", peer.path("\(name).csr"),
                                         "-out", peer.path("\(name).pem"), "-extfile", ext]), "issuing")
        try must(agent.signet(["cert", "import", peer.path("\(name).pem"), "--trust-roots"]), "cert import")
        try must(agent.signet(["trust", "add", peer.path("ca.pem")]), "trust add")
        return peer.path("\(name).pem")
    }

    var plainURI: String { "ldap://127.0.0.1:\(ldapPort)/\(Self.base)" }
    var ldapsURI: String { "ldaps://127.0.0.1:\(ldapsPort)/\(Self.base)" }
    var caLine: String { "directory-ca-file = \(peer.path("server-ca.pem"))\n" }
}

extension DirectoryWorld {
    /// Starts `command` in the background with its output in `log`, under a shell that SIGKILLs it once its standard
    /// input, a pipe this process holds, closes. Returns the shell's pid and the pipe's write end (close-on-exec).
    static func spawnTied(_ command: [String], log: String) throws -> (pid_t, Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TestFailure("pipe failed") }
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        let out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        defer { close(out); close(fds[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_adddup2(&actions, out, 1)
        posix_spawn_file_actions_adddup2(&actions, out, 2)
        // The shell exits with the program; a reader in the background kills the program when the pipe closes first.
        // (fd 3: a background list's standard input is /dev/null unless redirected explicitly.)
        let script = "exec 3<&0; \"$@\" </dev/null & child=$!; { read -r _ <&3; kill -9 $child 2>/dev/null; } & wait $child"
        let argv = (["/bin/sh", "-c", script, "sh"] + command).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { env.forEach { free($0) } }
        // No signal blocked or ignored, whatever this thread has: the test runner's threads block SIGCHLD and SIGTERM
        // (the shell's `wait` would never return) and ignore SIGPIPE.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rv = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, env)
        guard rv == 0 else { close(fds[1]); throw TestFailure("could not start \(command[0]): \(String(cString: strerror(rv)))") }
        return (pid, fds[1])
    }
}
