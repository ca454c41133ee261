import Foundation
import SignetTestSupport
import Testing

/// Findings of the security review (issue 19) on the command line, run through the `signet` binary.
@Suite("Hardening: the signet command line")
final class CLIHardeningTests {
    let home: URL
    let environment: [String: String]
    let peer: OpenSSLPeer
    var signet: String { TestPaths.binaries.appendingPathComponent("signet").path }

    init() throws {
        home = try TestPaths.temporaryDirectory("signet-home")
        environment = TestPaths.userEnvironment(home: home)
        peer = try OpenSSLPeer()
    }

    /// `signet arguments…` under umask 022, the common default that let plaintext out as 0644.
    func signetWithUmask022(_ arguments: [String]) throws -> Run.Result {
        try Run.command("/bin/sh", ["-c", "umask 022; exec \"$0\" \"$@\"", signet] + arguments, environment: environment, timeout: 60)
    }

    func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    @Test("verify -o writes the signed content (plaintext) as 0600, as decrypt does")
    func verifyOutputIsPrivate() throws {
        let key = peer.path("key.pem"), cert = peer.path("cert.pem")
        let made = try peer.run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                                 "-subj", "/CN=Alice/emailAddress=alice@example.org", "-keyout", key, "-out", cert])
        try #require(made.status == 0, "\(made.errors)")
        let content = try peer.file("content.txt", text: "Content-Type: text/plain\r\n\r\nthe salary figures\r\n")
        let signed = peer.path("signed.eml")
        let signing = try peer.run(["cms", "-sign", "-in", content, "-signer", cert, "-inkey", key, "-out", signed])
        try #require(signing.status == 0, "\(signing.errors)")
        let out = peer.path("out.txt")
        let verified = try signetWithUmask022(["verify", "--in", signed, "-o", out])
        #expect(verified.status == 14, "untrusted signer, content written: \(verified.errors)")
        #expect(text(out).contains("the salary figures"))
        #expect(mode(out) == 0o600)
    }

    @Test("decrypt of a 200 KB message of nested indefinite lengths says it nests too deep and exits 10 (not a readable message), instead of crashing")
    func deepBERIsRefusedByDecrypt() throws {
        let envelopedType: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03]
        let depth = 100_000
        let message: [UInt8] = [0x30, 0x80] + envelopedType + [0xA0, 0x80, 0x30, 0x80, 0x02, 0x01, 0x00]
            + Array([[UInt8]](repeating: [0x31, 0x80], count: depth).joined()) + [UInt8](repeating: 0, count: 2 * depth)
        let path = try peer.file("deep.der", message)
        let result = try Run.command(signet, ["decrypt", "--in", path, "-o", peer.path("deep.out")], environment: environment, timeout: 60)
        #expect(result.status == 10, "\(result.status): \(result.errors)")
        #expect(result.errors.contains("the message header nests BER deeper than 64 levels; it is not a message a mail program makes"), "\(result.errors)")
        #expect(!FileManager.default.fileExists(atPath: peer.path("deep.out")))
    }
}

/// The text of a file, empty when it cannot be read.
private func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
