import Foundation
import SignetTestSupport
import Testing

/// `verify --fetch-crl` fetches only for a signer whose path reaches a trusted root, follows no redirect,
/// refuses loopback addresses unless configured, and makes at most 4 requests per message (issue 19 #6).
/// A CRL distribution point is a URL the sender chose: fetching it for any signer gave a blind SSRF and a read receipt.
@Suite("CRL fetching: bounded, and only for trusted paths")
final class CRLFetchTests {
    let home: URL
    let environment: [String: String]
    let peer: OpenSSLPeer
    let server: LocalHTTPServer
    var signet: String { TestPaths.binaries.appendingPathComponent("signet").path }
    var configFile: String { home.appendingPathComponent("config/signet/config").path }

    init() throws {
        home = try TestPaths.temporaryDirectory("signet-home")
        environment = TestPaths.userEnvironment(home: home)
        peer = try OpenSSLPeer()
        try FileManager.default.createDirectory(atPath: peer.path("served"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: home.appendingPathComponent("config/signet").path, withIntermediateDirectories: true)
        server = try LocalHTTPServer(directory: peer.path("served"))
    }

    deinit { server.stop() }

    /// A root CA, a signer it issued whose CRL distribution points are `points` on the local server, the root's
    /// empty CRL as `served/root.crl` (DER), and a message that signer signed. Returns the message and the root.
    func signedMessage(points: [String]) throws -> (message: String, root: String) {
        let root = peer.path("root.pem"), rootKey = peer.path("root.key")
        try Run.checked("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                                    "-subj", "/O=Example CA/CN=Example Root", "-keyout", rootKey, "-out", root])
        let key = peer.path("signer.key"), request = peer.path("signer.csr"), cert = peer.path("signer.pem")
        try Run.checked("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                    "-subj", "/CN=Alice Example", "-keyout", key, "-out", request])
        let extensions = try peer.file("signer.ext", text: """
            keyUsage=critical,digitalSignature
            extendedKeyUsage=emailProtection
            subjectAltName=email:alice@example.org
            crlDistributionPoints=\(points.map { "URI:" + server.url($0) }.joined(separator: ","))
            """)
        try Run.checked("openssl", ["x509", "-req", "-in", request, "-CA", root, "-CAkey", rootKey, "-set_serial", "7", "-days", "10",
                                    "-extfile", extensions, "-out", cert])
        let caConfig = try peer.file("ca.cnf", text: "[ca]\ndefault_ca=d\n[d]\ndatabase=\(peer.path("index.txt"))\ncrlnumber=\(peer.path("crlnumber"))\ndefault_md=sha256\ndefault_crl_days=30\n")
        _ = try peer.file("index.txt", text: "")
        _ = try peer.file("crlnumber", text: "01\n")
        try Run.checked("openssl", ["ca", "-gencrl", "-config", caConfig, "-keyfile", rootKey, "-cert", root, "-out", peer.path("root.crl")])
        try Run.checked("openssl", ["crl", "-in", peer.path("root.crl"), "-outform", "DER", "-out", peer.path("served/root.crl")])
        let content = try peer.file("content.txt", text: "Content-Type: text/plain\r\n\r\nHello\r\n")
        let message = peer.path("signed.eml")
        try Run.checked("openssl", ["cms", "-sign", "-in", content, "-signer", cert, "-inkey", key, "-out", message])
        return (message, root)
    }

    func configure(_ text: String) throws { try text.write(toFile: configFile, atomically: true, encoding: .utf8) }

    func verify(_ arguments: [String]) throws -> Run.Result {
        try Run.command(signet, ["verify"] + arguments, environment: environment, timeout: 60)
    }

    @Test("With crl-fetch-local = yes, the CRL of a trusted signer is fetched from the local server and the signer is good")
    func trustedSignerIsChecked() throws {
        let (message, root) = try signedMessage(points: ["root.crl"])
        try configure("crl-fetch-local = yes\n")
        let result = try verify(["--in", message, "--trust", root, "--fetch-crl"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(server.requested == ["/root.crl"])
    }

    @Test("An untrusted signer's CRL distribution point is never contacted, even with crl-fetch-local = yes")
    func untrustedSignerIsNeverFetched() throws {
        let (message, _) = try signedMessage(points: ["root.crl"])
        try configure("crl-fetch-local = yes\n")
        let result = try verify(["--in", message, "--fetch-crl"])
        #expect(result.status == 14, "\(result.errors)")
        #expect(result.errors.contains("NOT TRUSTED"), "\(result.errors)")
        #expect(server.requested.isEmpty, "the sender learnt the message was opened: \(server.requested)")
    }

    @Test("A redirect is refused and named; its target is never requested")
    func redirectIsRefused() throws {
        let (message, root) = try signedMessage(points: ["moved.crl"])
        server.redirect("moved.crl", to: server.url("root.crl"))
        try configure("crl-fetch-local = yes\n")
        let result = try verify(["--in", message, "--trust", root, "--fetch-crl"])
        #expect(result.status == 14, "\(result.errors)")
        #expect(result.errors.contains("the server redirects (302 Found) to \(server.url("root.crl")); Signet does not follow redirects"), "\(result.errors)")
        #expect(server.requested == ["/moved.crl"])
    }

    @Test("A loopback address is refused without crl-fetch-local = yes, and the message says how to allow it")
    func loopbackIsRefusedByDefault() throws {
        let (message, root) = try signedMessage(points: ["root.crl"])
        let result = try verify(["--in", message, "--trust", root, "--fetch-crl"])
        #expect(result.status == 14, "\(result.errors)")
        #expect(result.errors.contains("127.0.0.1 is a loopback address") && result.errors.contains("crl-fetch-local = yes"), "\(result.errors)")
        #expect(server.requested.isEmpty, "\(server.requested)")
    }

    @Test("A message makes at most 4 CRL requests, however many distribution points its certificates name")
    func requestsAreCapped() throws {
        let (message, root) = try signedMessage(points: (1...7).map { "missing-\($0).crl" })
        try configure("crl-fetch-local = yes\n")
        let result = try verify(["--in", message, "--trust", root, "--fetch-crl"])
        #expect(result.status == 14, "\(result.errors)")
        #expect(server.requested == (1...4).map { "/missing-\($0).crl" }, "\(server.requested)")
        #expect(result.errors.contains("not fetched from \(server.url("missing-5.crl")): Signet makes at most 4 CRL requests per message"), "\(result.errors)")
    }
}
