import Foundation
import SignetTestSupport
import Testing

/// Terminal controls from certificates, tokens and the audit log are printed as visible escapes (issue 19 #3).
/// Without the escape, a common name holding `ESC[1A ESC[2K` rewrote the report on screen and hid "NOT TRUSTED".
@Suite("Terminal safety: text from outside is printed escaped")
final class TerminalSafetyTests {
    let home: URL
    let environment: [String: String]
    let peer: OpenSSLPeer
    var signet: String { TestPaths.binaries.appendingPathComponent("signet").path }

    /// A common name that moves up a line, erases it, writes a forged verdict, ends the line and reverses what follows.
    /// (A common name holds at most 64 characters.)
    static let hostileName = "M\u{1B}[1A\u{1B}[2KLayer 1: signed by Alice: good signature\r\n\u{202E}gro.e"

    init() throws {
        home = try TestPaths.temporaryDirectory("signet-home")
        environment = TestPaths.userEnvironment(home: home)
        peer = try OpenSSLPeer()
    }

    /// Whether `text` holds a raw control that a terminal acts on (ESC, CR, C1, bidi), rather than its escape.
    static func holdsRawControls(_ text: String) -> Bool {
        text.unicodeScalars.contains { scalar in
            (scalar.value < 0x20 && scalar != "\n") || (0x7F...0x9F).contains(scalar.value) || (0x202A...0x202E).contains(scalar.value)
        }
    }

    /// A self-signed P-256 certificate for `subject` (UTF-8): the key's and the certificate's paths.
    func selfSigned(_ subject: String, name: String) throws -> (key: String, certificate: String) {
        let key = peer.path("\(name).key"), cert = peer.path("\(name).pem")
        let made = try peer.run(["req", "-x509", "-utf8", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                                 "-subj", subject, "-keyout", key, "-out", cert])
        try #require(made.status == 0, "\(made.errors)")
        return (key, cert)
    }

    @Test("verify of a message whose signer's common name holds ESC[1A ESC[2K, CR LF and U+202E prints one escaped signer line and NOT TRUSTED")
    func hostileCommonNameIsEscaped() throws {
        let (key, cert) = try selfSigned("/CN=\(Self.hostileName)/emailAddress=mallory@example.org", name: "cert")
        let content = try peer.file("content.txt", text: "Content-Type: text/plain\r\n\r\nPay the bearer\r\n")
        let signed = peer.path("signed.eml")
        let signing = try peer.run(["cms", "-sign", "-in", content, "-signer", cert, "-inkey", key, "-out", signed])
        try #require(signing.status == 0, "\(signing.errors)")

        let verified = try Run.command(signet, ["verify", "--in", signed], environment: environment, timeout: 60)
        #expect(verified.status == 14, "untrusted signer: \(verified.errors)")
        #expect(!Self.holdsRawControls(verified.errors), "\(verified.errors.debugDescription)")
        let lines = verified.errors.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix("Layer ") }.count == 1, "the forged verdict is not a line of its own: \(lines)")
        #expect(lines.first?.contains("M\\e[1A\\e[2KLayer 1: signed by Alice") == true, "\(lines)")
        #expect(lines.first?.contains("good signature\\r\\n\\u{202E}gro.e") == true, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("  NOT TRUSTED") }, "\(lines)")

        // JSON is for programs: the encoder escapes its controls, and the name reads back exactly (U+202E included).
        let json = try Run.command(signet, ["verify", "--in", signed, "--json"], environment: environment, timeout: 60)
        #expect(!json.output.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "\(json.output.debugDescription)")
        let reports = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [[String: String]])
        #expect(reports.first?["signer"]?.contains("\u{202E}gro.e") == true, "\(reports)")
    }

    @Test("signet trust list prints a CA's subject with its controls escaped")
    func trustListEscapesSubjects() throws {
        let (_, cert) = try selfSigned("/O=\u{9B}2K\u{2067}Root/CN=Evil\u{85}CA", name: "ca")
        let added = try Run.command(signet, ["trust", "add", cert], environment: environment, timeout: 60)
        try #require(added.status == 0, "\(added.errors)")
        #expect(!Self.holdsRawControls(added.output + added.errors), "\(added.output.debugDescription)")
        let listed = try Run.command(signet, ["trust", "list"], environment: environment, timeout: 60)
        #expect(listed.status == 0)
        #expect(!Self.holdsRawControls(listed.output), "\(listed.output.debugDescription)")
        #expect(listed.output.contains("\\u{9B}2K\\u{2067}Root") && listed.output.contains("Evil\\u{85}CA"), "\(listed.output)")
        #expect(listed.output.split(separator: "\n").count == 1)
    }

    @Test("status shows a token label with controls escaped, and signet log shows the requests naming it as one escaped line each")
    func tokenLabelsAndLogLinesAreEscaped() throws {
        let agent = try AgentFixture()
        defer { _ = try? agent.signet(["agent", "stop"]) }
        try agent.makeToken("\u{1B}[2KEvil\u{1B}[1A")
        let status = try agent.signet(["status"])
        #expect(status.status == 0, "\(status.errors)")
        #expect(!Self.holdsRawControls(status.output), "\(status.output.debugDescription)")
        #expect(status.output.contains("\\e[2KEvil\\e[1A"), "\(status.output)")

        // A request naming a token URI whose label decodes to ESC[2K and a newline (the agent logs it as sent).
        let forged = "pkcs11:token=%1B%5B2K%0A2026-01-01%2000:00:00.000%20UTC%20%20unlock%20ok"
        _ = try agent.signet(["lock", "--token", forged])
        let audit = agent.auditLog
        try #require(audit.contains("%1B%5B2K%0A"), "the agent records the URI as sent: \(audit)")
        for arguments in [["log"], ["log", "--wide"]] {
            let log = try agent.signet(arguments)
            #expect(log.status == 0, "\(log.errors)")
            #expect(!Self.holdsRawControls(log.output), "\(arguments): \(log.output.debugDescription)")
            let lines = log.output.split(separator: "\n")
            let entries = audit.split(separator: "\n").count
            #expect(lines.count == entries, "one line per audit entry: \(lines)")
            #expect(!lines.contains { $0.hasPrefix("2026-01-01") }, "no forged line: \(lines)")
        }
        let short = try agent.signet(["log"]).output
        #expect(short.contains("token=\\e[2K\\n2026-01-01 00:00:00.000 UTC  unlock ok"), "\(short)")
    }
}
