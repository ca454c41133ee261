import Foundation
import SignetCore
@testable import SignetMail
import SignetOpenSSL
import SignetTestSupport
import Testing

/// `--fetch-crl`'s time bounds (issue 19 #6): a distribution point that accepts and never answers must not
/// hold a message for longer than the per-message total, however many URLs its certificates name.
@Suite("CRL fetching: the time bounds")
struct CRLFetcherTests {
    /// A TCP listener on 127.0.0.1 that accepts connections and never answers.
    final class Staller {
        let fd: Int32
        let port: UInt16
        init() throws {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard bound == 0, listen(listener, 16) == 0 else { throw TestFailure("cannot listen: \(String(cString: strerror(errno)))") }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
            fd = listener
            port = UInt16(bigEndian: address.sin_port)
        }
        deinit { close(fd) }  // the kernel completes the handshakes; nothing is ever read or written
    }

    @Test("Three stalling distribution points: the first waits its own bound, the second what is left of the total, the third is not fetched")
    func totalBoundHolds() throws {
        let staller = try Staller()
        let peer = try OpenSSLPeer()
        let urls = (1...3).map { "URI:http://127.0.0.1:\(staller.port)/\($0).crl" }.joined(separator: ",")
        let made = try peer.run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj", "/CN=Stalled",
                                 "-addext", "crlDistributionPoints=\(urls)", "-keyout", peer.path("k.pem"), "-out", peer.path("c.pem")])
        try #require(made.status == 0, "\(made.errors)")
        let certificate = try #require(try readCertificateFile(peer.path("c.pem")).certificates.first)
        try #require(certificate.crlDistributionPoints.count == 3, "\(certificate.crlDistributionPoints)")

        let fetcher = CRLFetcher(allowLocal: true, totalSeconds: 1.0, eachSeconds: 0.7)
        var notes: [String] = []
        let started = MonotonicClock.seconds()
        let lists = fetcher.lists(for: [certificate, certificate]) { notes.append($0) }  // the path: the leaf, then its anchor
        let elapsed = MonotonicClock.seconds() - started
        #expect(lists.isEmpty)
        #expect(elapsed >= 0.9 && elapsed < 1.6, "\(elapsed) s for three stalled URLs under a 1 s total")
        #expect(notes.count == 3, "\(notes)")
        #expect(notes.last?.contains("are spent") == true, "\(notes)")
    }
}
