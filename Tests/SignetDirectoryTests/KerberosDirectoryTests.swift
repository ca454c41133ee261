import Foundation
import SignetTestSupport
import Testing

/// A throw-away MIT Kerberos realm on loopback: a database made with `kdb5_util create -s` and `kadmin.local` in a
/// temporary directory, its own krb5.conf and kdc.conf (KRB5_CONFIG, KRB5_KDC_PROFILE), and a real `krb5kdc` on
/// 127.0.0.1, started here and killed when the realm goes. Principals: ldap/127.0.0.1 (its key in `serviceKeytab`,
/// for slapd) and the user `me` (its key in a keytab, so `kinit` needs no password).
final class KerberosRealm {
    let realm = "SIGNET.TEST"
    let directory: URL
    let port: Int
    private var kdc: pid_t = 0
    private var keeper: Int32 = -1

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    var krb5Config: String { path("krb5.conf") }
    var serviceKeytab: String { path("ldap.keytab") }
    var userKeytab: String { path("me.keytab") }
    /// The user's ticket cache.
    var ticketCache: String { "FILE:" + path("me.ccache") }
    /// What a Kerberos client of this realm needs: its krb5.conf and the user's ticket cache.
    var clientEnvironment: [String: String] { ["KRB5_CONFIG": krb5Config, "KRB5CCNAME": ticketCache] }

    init(port: Int) throws {
        self.port = port
        directory = try TestPaths.temporaryDirectory("signet-kdc")
        // No DNS: the service principal's host is the name written (ldap/127.0.0.1), as Signet asks for it (SASL_NOCANON),
        // and slapd accepts any principal of its keytab.
        try """
            [libdefaults]
              default_realm = \(realm)
              dns_lookup_kdc = false
              dns_lookup_realm = false
              dns_canonicalize_hostname = false
              rdns = false
              ignore_acceptor_hostname = true
            [realms]
              \(realm) = {
                kdc = 127.0.0.1:\(port)
              }

            """.write(toFile: krb5Config, atomically: true, encoding: .utf8)
        try """
            [kdcdefaults]
              kdc_ports = \(port)
              kdc_tcp_ports = \(port)
            [realms]
              \(realm) = {
                database_name = \(path("principal"))
                key_stash_file = \(path("stash"))
                acl_file = \(path("kadm5.acl"))
                kdc_listen = 127.0.0.1:\(port)
                kdc_tcp_listen = 127.0.0.1:\(port)
              }
            [logging]
              kdc = FILE:\(path("kdc.log"))

            """.write(toFile: path("kdc.conf"), atomically: true, encoding: .utf8)
        let environment = ProcessInfo.processInfo.environment.merging(["KRB5_CONFIG": krb5Config, "KRB5_KDC_PROFILE": path("kdc.conf")]) { $1 }
        // A throw-away master password for a throw-away database.
        try Run.checked("/usr/sbin/kdb5_util", ["create", "-s", "-r", realm, "-P", "throw-away-master"], environment: environment)
        for query in ["addprinc -randkey me", "addprinc -randkey ldap/127.0.0.1", "ktadd -k \(userKeytab) me", "ktadd -k \(serviceKeytab) ldap/127.0.0.1"] {
            try Run.checked("/usr/sbin/kadmin.local", ["-r", realm, "-q", query], environment: environment)
        }
        chmod(serviceKeytab, 0o644)  // slapd runs as this user; a throw-away test key
        (kdc, keeper) = try DirectoryWorld.spawnTied(["/usr/bin/env", "KRB5_CONFIG=\(krb5Config)", "KRB5_KDC_PROFILE=\(path("kdc.conf"))",
                                                      "/usr/sbin/krb5kdc", "-n", "-r", realm], log: path("krb5kdc.out"))
        // Ours listening, not a KDC another run left on the port: it logs "commencing operation" once its sockets are
        // bound, and exits when it can bind none.
        var exited = false
        let ready = eventually(timeout: .seconds(20)) {
            var status: Int32 = 0
            if waitpid(self.kdc, &status, WNOHANG) == self.kdc { exited = true; return true }
            return ((try? String(contentsOfFile: self.path("kdc.log"), encoding: .utf8)) ?? "").contains("commencing operation")
        }
        if exited { kdc = 0 }
        guard ready, !exited else {
            throw TestFailure("krb5kdc did not start within 20 s: \((try? String(contentsOfFile: path("kdc.log"), encoding: .utf8)) ?? "")"
                              + ((try? String(contentsOfFile: path("krb5kdc.out"), encoding: .utf8)) ?? ""))
        }
    }

    deinit {
        if keeper >= 0 { close(keeper) }
        var status: Int32 = 0
        if kdc > 0 { _ = eventually(timeout: .seconds(10)) { waitpid(kdc, &status, WNOHANG) == kdc } }
    }

    /// `kinit` as `me` into the user's ticket cache, retried while the KDC starts.
    func kinit() throws {
        let environment = ProcessInfo.processInfo.environment.merging(clientEnvironment) { $1 }
        var last = ""
        let done = eventually(timeout: .seconds(20)) {
            guard let result = try? Run.command("/usr/bin/kinit", ["-k", "-t", self.userKeytab, "me@\(self.realm)"], environment: environment) else { return false }
            last = result.errors
            return result.status == 0
        }
        guard done else {
            throw TestFailure("kinit failed: \(last) \((try? String(contentsOfFile: path("krb5kdc.out"), encoding: .utf8)) ?? "")")
        }
    }

    /// `kdestroy`: the user's ticket cache goes.
    func kdestroy() throws {
        _ = try Run.command("/usr/bin/kdestroy", [], environment: ProcessInfo.processInfo.environment.merging(clientEnvironment) { $1 })
    }
}

/// `directory-bind = sasl-gssapi` for real: a MIT KDC and a slapd with a keytab for ldap/127.0.0.1, on loopback.
@Suite("Publishing with a Kerberos ticket (SASL GSSAPI) to a real slapd and MIT KDC", .serialized)
final class KerberosDirectoryTests {
    let realm: KerberosRealm
    let world: DirectoryWorld
    let agent: AgentFixture
    let me = "uid=me,ou=people,\(DirectoryWorld.base)"
    /// The service principal is ldap/HOST with HOST as the URI writes it: ldap/127.0.0.1, which the TLS certificate names
    /// too (libldap checks a certificate for "localhost" against the machine's own name instead).
    var uri: String { world.plainURI }

    init() throws {
        realm = try KerberosRealm(port: 41661)
        world = try DirectoryWorld(ports: (41663, 41664), kerberos: realm)
        agent = try world.unlockedAgent(config: "directory = \(world.plainURI)\n" + world.caLine + "directory-bind = sasl-gssapi\n",
                                        extraEnvironment: realm.clientEnvironment)
    }

    deinit { agent.stop() }

    func published() throws -> [String] { try world.published("userCertificate;binary", of: me) }

    @Test("With a ticket from kinit, publish writes to the entry the principal maps to (seen by ldapsearch), and unpublish removes it")
    func publishWithTicket() throws {
        try realm.kinit()
        let pem = try world.enrol(agent, "mail", email: "me@example.org", id: "01")
        let publish = try agent.signet(["cert", "publish"])
        #expect(publish.status == 0, "\(publish.errors)")
        #expect(publish.output.contains("userCertificate;binary of \(me) in \(uri): added"), "\(publish.output)")
        #expect(try published() == [try world.derBase64(pem)])
        let log = try String(contentsOfFile: world.slapdLog, encoding: .utf8)
        #expect(log.contains("BIND authcid=\"me@\(realm.realm)\""), "slapd saw no GSSAPI bind as me")
        #expect(log.contains("BIND dn=\"\(me)\" mech=GSSAPI"), "the bind was not mapped to the entry")
        // Lookups bind with the ticket too.
        let found = try agent.signet(["cert", "find", "alice@example.org", "--offline", "--refresh"])
        #expect(found.status == 0, "\(found.errors)")
        let binds = try String(contentsOfFile: world.slapdLog, encoding: .utf8).components(separatedBy: "BIND dn=\"\(me)\" mech=GSSAPI").count - 1
        #expect(binds == 2, "slapd saw \(binds) GSSAPI binds as me (publish, then find)")
        let unpublish = try agent.signet(["cert", "unpublish", try world.id("mail")])
        #expect(unpublish.status == 0, "\(unpublish.errors)")
        #expect(try published().isEmpty)
    }

    @Test("Without a ticket, publish fails saying to run kinit, and nothing is written; the report names the bind and where its credentials come from")
    func noTicket() throws {
        try realm.kdestroy()
        _ = try world.enrol(agent, "mail", email: "me@example.org", id: "01")
        let publish = try agent.signet(["cert", "publish"])
        #expect(publish.status == 1)
        #expect(publish.errors.contains("\(uri): no Kerberos ticket: run kinit"), "\(publish.errors)")
        #expect(try published().isEmpty)
        let archive = world.peer.path("report.tar.gz")
        let report = try agent.signet(["report", "-o", archive])
        #expect(report.status == 0, "\(report.errors)")
        let listing = try Run.checked("tar", ["-xzOf", archive, "--wildcards", "*directory.txt"]).output
        #expect(listing.contains("directory-bind: sasl-gssapi\n"), "\(listing)")
        #expect(listing.contains("directory-credentials: your Kerberos ticket (KRB5CCNAME, or the default cache)"), "\(listing)")
    }
}
