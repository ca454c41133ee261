import Foundation
import SignetDirectory
import SignetTestSupport
import Testing

/// `signet cert find` and `signet encrypt --to` against a real slapd (issue 27, part 1).
@Suite("Directory lookup against a real slapd", .serialized)
final class DirectoryLookupTests {
    let world: DirectoryWorld

    init() throws { world = try DirectoryWorld() }

    func find(_ query: String, _ more: [String] = []) throws -> Run.Result { try world.run(["cert", "find", query] + more) }

    func json(_ result: Run.Result) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any] ?? [:]
    }

    func certificates(_ result: Run.Result) throws -> [[String: Any]] { try json(result)["certificates"] as? [[String: Any]] ?? [] }

    @Test("Over StartTLS (directory-tls = require), bob's expired certificate is refused as expired and the current one is chosen")
    func expiredRefusedCurrentChosen() throws {
        try world.configure("directory = \(world.plainURI)\ndirectory-tls = require\n" + world.caLine)
        let result = try find("bob@example.org", ["--json", "--offline"])
        #expect(result.status == 0, "\(result.errors)")
        let found = try certificates(result)
        #expect(found.count == 2)
        let chosen = found.filter { $0["chosen"] as? Bool == true }
        #expect(chosen.map { $0["id"] as? String } == [try world.id("bob")])
        let old = found.first { $0["id"] as? String == (try? world.id("bob-old")) }
        #expect((old?["refused"] as? [String])?.contains { $0.hasPrefix("expired on 2021-01-01") } == true, "\(found)")
        #expect((try json(result)["directories"] as? [String])?.first?.contains("StartTLS") == true, "\(result.output)")
    }

    @Test("A certificate from a CA Signet does not trust is shown refused, with the reason, and find fails")
    func untrustedCARefused() throws {
        try world.configure("directory = \(world.ldapsURI)\n" + world.caLine)
        let result = try find("carol@example.org", ["--offline"])
        #expect(result.status == 1)
        #expect(result.output.contains("refused: it does not chain to a root in Signet's trust store"), "\(result.output)")
        #expect(result.errors.contains("No usable certificate for carol@example.org: every certificate found was refused"), "\(result.errors)")
    }

    @Test("A secondary address in proxyAddresses (smtp:) finds its person, whose certificate names it")
    func proxyAddressFound() throws {
        try world.configure("directory = \(world.plainURI)\n" + world.caLine)
        let result = try find("d.smith@example.org", ["--json", "--offline"])
        #expect(result.status == 0, "\(result.errors)")
        let found = try certificates(result)
        #expect(found.map { $0["dn"] as? String } == ["uid=dave,ou=people,\(DirectoryWorld.base)"])
        #expect(found.first?["chosen"] as? Bool == true)
    }

    @Test("A PKCS#7 SignedData in userSMIMECertificate gives its person's certificate; a name search finds it too")
    func pkcs7Found() throws {
        try world.configure("directory = \(world.plainURI)\n" + world.caLine)
        let result = try find("erin@example.org", ["--json", "--offline"])
        #expect(result.status == 0, "\(result.errors)")
        let found = try certificates(result)
        #expect(found.map { $0["id"] as? String } == [try world.id("erin")])
        #expect(found.first?["attribute"] as? String == "userSMIMECertificate")
        let byName = try find("Erin Colleague", ["--json", "--offline"])
        #expect(try certificates(byName).first?["chosen"] as? Bool == true, "\(byName.output) \(byName.errors)")
    }

    @Test("A certificate whose key usage allows no encryption is refused with that reason")
    func signingOnlyRefused() throws {
        try world.configure("directory = \(world.plainURI)\n" + world.caLine)
        let result = try find("grace@example.org", ["--offline"])
        #expect(result.status == 1)
        #expect(result.output.contains("refused: its key usage allows no encryption"), "\(result.output)")
    }

    @Test("encrypt --to finds alice over ldaps://, and OpenSSL decrypts the message with alice's key")
    func encryptToColleague() throws {
        try world.configure("directory = \(world.ldapsURI)\n" + world.caLine)
        let content = try world.peer.file("content.txt", text: "Content-Type: text/plain\r\n\r\nFor Alice only\r\n")
        let out = world.peer.path("to-alice.eml")
        let encrypted = try world.run(["encrypt", "--to", "alice@example.org", "--self", world.peer.path("bob.pem"), "--in", content, "-o", out])
        #expect(encrypted.status == 0, "\(encrypted.errors)")
        let decrypted = try Run.command("openssl", ["cms", "-decrypt", "-in", out, "-recip", world.peer.path("alice.pem"),
                                                    "-inkey", world.peer.path("alice.key")])
        #expect(decrypted.status == 0, "\(decrypted.errors)")
        #expect(decrypted.output.contains("For Alice only"))
        // Encrypted to alice's certificate from the directory: her key opens it, and the cache now has it.
        let again = try find("alice@example.org", ["--json", "--offline"])
        #expect(try json(again)["fromCache"] as? Bool == true, "\(again.output)")
    }

    @Test("A name with filter metacharacters finds nothing and changes no filter: slapd receives it escaped")
    func filterInjection() throws {
        try world.configure("directory = \(world.plainURI)\n" + world.caLine)
        for hostile in ["*)(mail=*", "alice*", "*", "x)(|(cn=*", "a\\2a"] {
            let result = try find(hostile, ["--json", "--offline"])
            #expect(result.status == 1, "\(hostile): \(result.output)")
            #expect(try certificates(result).isEmpty, "\(hostile) found \(result.output)")
        }
        let log = try String(contentsOfFile: world.slapdLog, encoding: .utf8)
        #expect(log.contains("filter=\"(|(cn=\\2A\\29\\28mail=\\2A)(displayName=\\2A\\29\\28mail=\\2A))\"") || log.contains("(cn=\\2a\\29\\28mail=\\2a)"),
                "slapd's log shows the filters: \(log.split(separator: "\n").filter { $0.contains("filter=") })")
        #expect(!log.contains("filter=\"(mail=*)\""))
    }

    @Test("Directories are tried in order: an unreachable one and one without the entry are passed over; one after a hit is not asked")
    func directoriesInOrder() throws {
        // The last directory stalls: were it asked, the lookup would wait out the time-out and the listener would count it.
        let stalled = try StalledListener(port: 41604)
        defer { stalled.stop() }
        let unreachable = "ldap://127.0.0.1:41605/\(DirectoryWorld.base)"  // nothing listens there
        let withoutAlice = "ldap://127.0.0.1:\(world.ldapPort)/uid=me,ou=people,\(DirectoryWorld.base)"
        try world.configure("directory = \(unreachable)\ndirectory = \(withoutAlice)\ndirectory = \(world.plainURI)\n"
                            + "directory = ldap://127.0.0.1:41604/\(DirectoryWorld.base)\ndirectory-timeout-seconds = 3\n" + world.caLine)
        let result = try find("alice@example.org", ["--json", "--offline"])
        #expect(result.status == 0, "\(result.errors)")
        let report = try json(result)
        let failures = report["failures"] as? [String] ?? []
        #expect(failures.count == 1 && failures.first?.hasPrefix("\(unreachable): cannot reach the server") == true, "\(failures)")
        let asked = report["directories"] as? [String] ?? []
        #expect(asked.count == 2, "\(asked)")
        #expect(asked.first?.hasPrefix("\(withoutAlice): ") == true && asked.first?.contains(", 0 entries") == true, "\(asked)")
        #expect(asked.last?.hasPrefix("\(world.plainURI): ") == true, "\(asked)")
        let chosen = try certificates(result).filter { $0["chosen"] as? Bool == true }
        #expect(chosen.map { $0["directory"] as? String } == [world.plainURI], "\(result.output)")
        #expect(stalled.accepted == 0, "the directory after the one that had alice was asked")
    }

    @Test("A directory that accepts the connection and says nothing fails within the time-out, naming it")
    func stalledDirectoryBounded() throws {
        let listener = try StalledListener(port: 41603)
        defer { listener.stop() }
        try world.configure("directory = ldap://127.0.0.1:41603/\(DirectoryWorld.base)\ndirectory-timeout-seconds = 2\n")
        let start = Date()
        let result = try find("alice@example.org", ["--offline"])
        let elapsed = Date().timeIntervalSince(start)
        #expect(result.status == 1)
        #expect(result.errors.contains("ldap://127.0.0.1:41603/\(DirectoryWorld.base)"), "\(result.errors)")
        #expect(result.errors.contains("no answer within the time-out"), "\(result.errors)")
        #expect(elapsed < 8, "took \(elapsed) s with a 2 s time-out")
        #expect(listener.accepted > 0, "the listener was never connected to")
    }

    @Test("ldaps:// to a server whose certificate does not chain to directory-ca-file is refused, naming TLS")
    func wrongServerCARefused() throws {
        try world.configure("directory = \(world.ldapsURI)\ndirectory-ca-file = \(world.peer.path("ca.pem"))\n")
        let result = try find("alice@example.org", ["--offline"])
        #expect(result.status == 1)
        #expect(result.errors.contains("TLS"), "\(result.errors)")
    }

    @Test("A simple bind reads its password from a 0600 file, and refuses a file others may read")
    func passwordFileMode() throws {
        let password = world.peer.path("directory-password")
        try "my-directory-password\n".write(toFile: password, atomically: true, encoding: .utf8)
        chmod(password, 0o644)
        try world.configure("directory = \(world.plainURI)\n" + world.caLine + "directory-bind = simple\n"
                            + "directory-bind-dn = uid=me,ou=people,\(DirectoryWorld.base)\ndirectory-password-file = \(password)\n")
        let refused = try find("alice@example.org", ["--offline"])
        #expect(refused.status == 1)
        #expect(refused.errors.contains("mode 644"), "\(refused.errors)")
        chmod(password, 0o600)
        let bound = try find("alice@example.org", ["--offline", "--refresh"])
        #expect(bound.status == 0, "\(bound.errors)")
        let log = try String(contentsOfFile: world.slapdLog, encoding: .utf8)
        #expect(log.contains("BIND dn=\"uid=me,ou=people,\(DirectoryWorld.base)\" method=128"), "slapd saw no simple bind")
    }

    @Test("A second find uses the cache (slapd stopped); --refresh asks again and fails")
    func cacheThenRefresh() throws {
        try world.configure("directory = \(world.plainURI)\n" + world.caLine)
        #expect(try find("alice@example.org", ["--offline"]).status == 0)
        world.stopSlapd()
        let cached = try find("alice@example.org", ["--json", "--offline"])
        #expect(cached.status == 0, "\(cached.errors)")
        #expect(try json(cached)["fromCache"] as? Bool == true)
        let refreshed = try find("alice@example.org", ["--offline", "--refresh"])
        #expect(refreshed.status == 1)
        #expect(refreshed.errors.contains("cannot reach the server"), "\(refreshed.errors)")
    }
}

/// RFC 4515 escaping, byte for byte.
@Suite("Directory filters")
struct DirectoryFilterTests {
    @Test("Metacharacters, NUL and non-ASCII bytes are escaped as \\XX; an address searches mail and proxyAddresses")
    func escaping() {
        #expect(DirectoryFilter.escape("*)(mail=*") == "\\2a\\29\\28mail=\\2a")
        #expect(DirectoryFilter.escape("a\\b\u{0}") == "a\\5cb\\00")
        #expect(DirectoryFilter.escape("Zoë") == "Zo\\c3\\ab")
        #expect(DirectoryFilter.filter(for: "bob@example.org")
                == "(|(mail=bob@example.org)(proxyAddresses=smtp:bob@example.org)(proxyAddresses=SMTP:bob@example.org))")
    }
}

/// A TCP listener on loopback that accepts connections and never answers: a stalled directory or responder.
final class StalledListener: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private var count = 0
    private var connections: [Int32] = []
    var accepted: Int { lock.withLock { count } }

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 8) == 0 else { throw TestFailure("cannot listen on 127.0.0.1:\(port): errno \(errno)") }
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                lock.withLock { count += 1; connections.append(client) }
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        lock.withLock { for client in connections { close(client) } }
    }
}

/// `signet report` carries the directory and revocation settings, and where the password comes from, never the password.
@Suite("Support report: directory settings")
struct DirectoryReportTests {
    @Test("The report's directory.txt names the directories, the bind, TLS and revocation settings, and holds no password")
    func reportHasSettingsNoPassword() throws {
        let home = try TestPaths.temporaryDirectory("signet-report-home")
        let environment = TestPaths.userEnvironment(home: home)
        let config = home.appendingPathComponent("config/signet")
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
        let password = home.appendingPathComponent("pw").path
        try "s3cret-directory-pw\n".write(toFile: password, atomically: true, encoding: .utf8)
        chmod(password, 0o600)
        try """
            directory = ldaps://ldap.example.org/dc=example,dc=org
            directory-bind = simple
            directory-bind-dn = uid=me,ou=people,dc=example,dc=org
            directory-password-file = \(password)
            directory-tls = require
            revocation = require

            """.write(toFile: config.appendingPathComponent("config").path, atomically: true, encoding: .utf8)
        let archive = home.appendingPathComponent("report.tar.gz").path
        let signet = TestPaths.binaries.appendingPathComponent("signet").path
        let result = try Run.command(signet, ["report", "-o", archive], environment: environment)
        #expect(result.status == 0, "\(result.errors)")
        let listing = try Run.checked("tar", ["-xzOf", archive, "--wildcards", "*directory.txt"]).output
        #expect(listing.contains("directory: ldaps://ldap.example.org/dc=example,dc=org"), "\(listing)")
        #expect(listing.contains("directory-bind: simple as uid=me,ou=people,dc=example,dc=org"), "\(listing)")
        #expect(listing.contains("revocation: require"), "\(listing)")
        #expect(listing.contains("directory-tls: require (an ldap:// directory without StartTLS is refused)"), "\(listing)")
        let everything = try Run.checked("tar", ["-xzOf", archive]).output
        #expect(!everything.contains("s3cret-directory-pw"))
    }
}

/// A directory without TLS: lookups still work, in the clear and saying so; a password is never sent that way.
@Suite("Directory lookup against a slapd without TLS", .serialized)
final class PlainDirectoryTests {
    let world: DirectoryWorld

    init() throws { world = try DirectoryWorld(tls: false, ports: (41641, 41642)) }

    @Test("ldap:// to a server with no StartTLS finds alice in the clear and says so (directory-tls = prefer, the default)")
    func plainLookup() throws {
        try world.configure("directory = \(world.plainURI)\n")
        let result = try world.run(["cert", "find", "alice@example.org", "--offline"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("plain (the server offers no StartTLS)"), "\(result.output)")
        let content = try world.peer.file("content.txt", text: "Content-Type: text/plain\r\n\r\nHello\r\n")
        let encrypted = try world.run(["encrypt", "--to", "alice@example.org", "--self", world.peer.path("bob.pem"), "--in", content,
                                       "-o", world.peer.path("out.eml"), "--refresh"])
        #expect(encrypted.status == 0, "\(encrypted.errors)")
        #expect(encrypted.errors.contains("Warning: \(world.plainURI) was searched in the clear"), "\(encrypted.errors)")
    }

    @Test("directory-tls = require refuses a server with no StartTLS, naming it, and sends it no search")
    func requireRefusesPlain() throws {
        try world.configure("directory = \(world.plainURI)\ndirectory-tls = require\n")
        let result = try world.run(["cert", "find", "alice@example.org", "--offline"])
        #expect(result.status == 1)
        #expect(result.errors.contains("\(world.plainURI): the server offers no StartTLS"), "\(result.errors)")
        #expect(result.errors.contains("directory-tls = require: Signet does not search it in the clear"), "\(result.errors)")
        let log = try String(contentsOfFile: world.slapdLog, encoding: .utf8)
        #expect(log.contains("EXT oid=1.3.6.1.4.1.1466.20037"), "slapd saw no StartTLS request")
        #expect(!log.contains("SRCH base="), "a search reached the server")
    }

    @Test("A simple bind is refused when the server offers no TLS: the password is not sent in the clear")
    func noPasswordInTheClear() throws {
        let password = world.peer.path("pw")
        try "my-directory-password\n".write(toFile: password, atomically: true, encoding: .utf8)
        chmod(password, 0o600)
        try world.configure("directory = \(world.plainURI)\ndirectory-bind = simple\ndirectory-bind-dn = uid=me,ou=people,\(DirectoryWorld.base)\n"
                            + "directory-password-file = \(password)\n")
        let result = try world.run(["cert", "find", "alice@example.org", "--offline"])
        #expect(result.status == 1)
        #expect(result.errors.contains("does not send a password in the clear"), "\(result.errors)")
        let log = try String(contentsOfFile: world.slapdLog, encoding: .utf8)
        #expect(!log.contains("BIND dn=\"uid=me"), "a bind reached the server")
    }
}
