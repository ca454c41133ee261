import Foundation
import SignetTestSupport
import Testing

/// OCSP (issue 27, part 3) against `openssl ocsp -index … -port` on loopback, started by the test: good, revoked,
/// a stalled responder, one that sends 100 MB, the cache until nextUpdate, and --offline.
@Suite("OCSP against openssl ocsp on loopback", .serialized)
final class OCSPTests {
    let world: DirectoryWorld
    private var responder: pid_t = 0
    private var keeper: Int32 = -1
    var responderLog: String { world.peer.path("ocsp.log") }

    init() throws {
        world = try DirectoryWorld(ports: (41631, 41632))
        // The CA signs its own responses (an authorised responder by RFC 6960 §4.2.2.2); -nmin 60: nextUpdate in an hour.
        (responder, keeper) = try DirectoryWorld.spawnTied(["/usr/bin/openssl", "ocsp", "-index", world.peer.path("ca-index.txt"),
                                                            "-port", "\(DirectoryWorld.ocspPort)", "-CA", world.peer.path("ca.pem"),
                                                            "-rsigner", world.peer.path("ca.pem"), "-rkey", world.peer.path("ca.key"),
                                                            "-nmin", "60", "-text"], log: responderLog)
        // Its log, not a probe connection: `openssl ocsp -port` (3.0) waits forever on a connection that closes
        // without a request, and answers no one else meanwhile.
        let up = eventually(timeout: .seconds(20)) {
            ((try? String(contentsOfFile: self.responderLog, encoding: .utf8)) ?? "").contains("waiting for OCSP client connections")
        }
        guard up else { throw TestFailure("openssl ocsp did not listen within 20 s: \((try? String(contentsOfFile: responderLog, encoding: .utf8)) ?? "")") }
        try world.configure("ocsp-fetch-local = yes\n")
    }

    deinit {
        if keeper >= 0 { close(keeper) }
        var status: Int32 = 0
        _ = eventually(timeout: .seconds(10)) { waitpid(responder, &status, WNOHANG) == responder }
    }

    /// Requests the responder received (it logs each to standard error, unbuffered).
    var requests: Int {
        ((try? String(contentsOfFile: responderLog, encoding: .utf8)) ?? "").components(separatedBy: "ocsp: Received request").count - 1
    }

    /// A message `name` signed with `openssl cms -sign`.
    func signed(by name: String) throws -> String {
        let content = try world.peer.file("content-\(name).txt", text: "Content-Type: text/plain\r\n\r\nFrom \(name)\r\n")
        let out = world.peer.path("signed-\(name).eml")
        try Run.checked("openssl", ["cms", "-sign", "-in", content, "-signer", world.peer.path("\(name).pem"), "-inkey", world.peer.path("\(name).key"),
                                    "-out", out])
        return out
    }

    func verify(_ name: String, _ more: [String] = []) throws -> Run.Result { try world.run(["verify", "--in", try signed(by: name)] + more) }

    @Test("A good signer is checked by OCSP and verifies; a second check within nextUpdate uses the cache (one request)")
    func goodThenCached() throws {
        let first = try verify("olivia")
        #expect(first.status == 0, "\(first.errors)")
        #expect(first.errors.contains("revocation: good (OCSP http://127.0.0.1:\(DirectoryWorld.ocspPort)"), "\(first.errors)")
        let second = try verify("olivia")
        #expect(second.status == 0, "\(second.errors)")
        #expect(second.errors.contains("(cached)"), "\(second.errors)")
        #expect(requests == 1, "the responder saw \(requests) requests")
    }

    @Test("A revoked signer fails verify with exit status 14 and the reason; encrypt refuses the revoked recipient")
    func revoked() throws {
        let result = try verify("frank")
        #expect(result.status == 14, "\(result.errors)")
        #expect(result.errors.contains("REVOKED") && result.errors.contains("keyCompromise"), "\(result.errors)")
        let content = try world.peer.file("plain.txt", text: "Content-Type: text/plain\r\n\r\nSecret\r\n")
        let encrypt = try world.run(["encrypt", "--to", world.peer.path("frank.pem"), "--self", world.peer.path("olivia.pem"), "--in", content,
                                     "-o", world.peer.path("to-frank.eml")])
        #expect(encrypt.status == 1)
        #expect(encrypt.errors.contains("is refused: it is revoked: keyCompromise"), "\(encrypt.errors)")
        #expect(!FileManager.default.fileExists(atPath: world.peer.path("to-frank.eml")))
    }

    @Test("cert find refuses the directory's revoked certificate, naming the reason")
    func directoryRevoked() throws {
        try world.configure("ocsp-fetch-local = yes\ndirectory = \(world.plainURI)\n" + world.caLine, trustCA: false)
        let result = try world.run(["cert", "find", "frank@example.org"])
        #expect(result.status == 1)
        #expect(result.output.contains("refused: it is revoked: keyCompromise"), "\(result.output)")
    }

    @Test("--offline asks no responder and says so")
    func offline() throws {
        let result = try verify("olivia", ["--offline"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.errors.contains("revocation: not checked (--offline)"), "\(result.errors)")
        #expect(requests == 0)
    }

    @Test("With revocation = require, a signer whose responder cannot answer is not trusted; with prefer it is, with a warning")
    func requireAndPrefer() throws {
        let stalled = try StalledListener(port: DirectoryWorld.stalledPort)
        defer { stalled.stop() }
        let start = Date()
        let prefer = try verify("stella")
        let elapsed = Date().timeIntervalSince(start)
        #expect(prefer.status == 0, "\(prefer.errors)")
        #expect(prefer.errors.contains("could not be checked") && prefer.errors.contains("timed out"), "\(prefer.errors)")
        #expect(elapsed < 16, "a stalled responder held verify for \(elapsed) s")
        #expect(stalled.accepted > 0)
        try world.configure("ocsp-fetch-local = yes\nrevocation = require\n", trustCA: false)
        let require = try verify("stella")
        #expect(require.status == 14, "\(require.errors)")
    }

    @Test("Responder down: the CRL decides (good, and revoked); both down: prefer warns and verifies, require fails")
    func crlFallback() throws {
        // Certificates naming a responder where nothing listens, and a CRL served by a real HTTP server (python3's).
        let crlURL = "http://127.0.0.1:\(DirectoryWorld.crlPort)/ca.crl"
        let names = "authorityInfoAccess=OCSP;URI:http://127.0.0.1:\(DirectoryWorld.deadPort)\ncrlDistributionPoints=URI:\(crlURL)"
        try world.issue("paula", cn: "Paula Colleague", emails: ["paula@example.org"], extra: names)
        try world.issue("ralph", cn: "Ralph Colleague", emails: ["ralph@example.org"], extra: names)
        try world.openssl(["ca", "-config", world.peer.path("ca.cnf"), "-revoke", world.peer.path("ralph.pem"), "-crl_reason", "keyCompromise"])
        let served = world.peer.path("crl")
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
        try world.openssl(["ca", "-gencrl", "-config", world.peer.path("ca.cnf"), "-out", world.peer.path("ca.crl.pem")])
        try world.openssl(["crl", "-in", world.peer.path("ca.crl.pem"), "-outform", "DER", "-out", served + "/ca.crl"])
        let httpLog = world.peer.path("http.log")
        var (http, keeper) = try DirectoryWorld.spawnTied(["/usr/bin/python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", served,
                                                           "\(DirectoryWorld.crlPort)"], log: httpLog)
        defer {
            if keeper >= 0 { close(keeper) }
            var status: Int32 = 0
            if http > 0 { _ = eventually(timeout: .seconds(10)) { waitpid(http, &status, WNOHANG) == http } }
        }
        let up = eventually(timeout: .seconds(20)) { ((try? String(contentsOfFile: httpLog, encoding: .utf8)) ?? "").contains("Serving HTTP") }
        guard up else { throw TestFailure("python3 -m http.server did not start: \((try? String(contentsOfFile: httpLog, encoding: .utf8)) ?? "")") }

        let good = try verify("paula")
        #expect(good.status == 0, "\(good.errors)")
        #expect(good.errors.contains("revocation: good (CRL \(crlURL) (OCSP: "), "\(good.errors)")
        let revoked = try verify("ralph")
        #expect(revoked.status == 14, "\(revoked.errors)")
        #expect(revoked.errors.contains("REVOKED") && revoked.errors.contains("CRL \(crlURL)"), "\(revoked.errors)")
        #expect(((try? String(contentsOfFile: httpLog, encoding: .utf8)) ?? "").contains("GET /ca.crl"), "the CRL was never fetched")

        // The CRL's server goes too: nothing can say.
        close(keeper)
        keeper = -1
        var status: Int32 = 0
        _ = eventually(timeout: .seconds(10)) { waitpid(http, &status, WNOHANG) == http }
        http = 0
        let prefer = try verify("paula")
        #expect(prefer.status == 0, "\(prefer.errors)")
        #expect(prefer.errors.contains("could not be checked") && prefer.errors.contains("used anyway, as revocation = prefer"), "\(prefer.errors)")
        #expect(prefer.errors.contains("CRL \(crlURL)"), "the CRL was not tried: \(prefer.errors)")
        try world.configure("ocsp-fetch-local = yes\nrevocation = require\n", trustCA: false)
        let require = try verify("paula")
        #expect(require.status == 14, "\(require.errors)")
        #expect(require.errors.contains("refused, as revocation = require"), "\(require.errors)")
    }

    @Test("A responder that sends 100 MB is cut off at the response limit, quickly")
    func floodBounded() throws {
        let flood = try FloodServer(port: DirectoryWorld.floodPort, bytes: 100 << 20)
        defer { flood.stop() }
        let start = Date()
        let result = try verify("hugo")
        let elapsed = Date().timeIntervalSince(start)
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.errors.contains("larger than"), "\(result.errors)")
        #expect(elapsed < 10, "took \(elapsed) s")
        #expect(flood.sent < 100 << 20, "the whole 100 MB was read")
    }
}

/// An HTTP server on loopback that answers 200 and then sends `bytes` bytes (a hostile OCSP responder).
final class FloodServer: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private var total = 0
    var sent: Int { lock.withLock { total } }

    init(port: Int, bytes: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 8) == 0 else { throw TestFailure("cannot listen on 127.0.0.1:\(port)") }
        Thread.detachNewThread { [self] in
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            defer { close(client) }
            var request = [UInt8](repeating: 0, count: 65536)
            _ = recv(client, &request, request.count, 0)
            let head = Array("HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: \(bytes)\r\n\r\n".utf8)
            _ = send(client, head, head.count, Int32(MSG_NOSIGNAL))
            let chunk = [UInt8](repeating: 0x30, count: 65536)
            var left = bytes
            while left > 0 {
                let n = send(client, chunk, min(chunk.count, left), Int32(MSG_NOSIGNAL))
                guard n > 0 else { return }
                lock.withLock { total += n }
                left -= n
            }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
