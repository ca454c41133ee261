import Foundation
import SignetTestSupport
import Testing

/// What new users ran into with a software token and the real agent: Bob's certificate and key
/// from Thunderbird's corpus (`signet import Bob.p12`), and certificates made with OpenSSL.
@Suite("First use with a token", .serialized)
final class FirstUseTokenTests {
    let agent: AgentFixture
    let peer: OpenSSLPeer
    static let code = "first-1234"
    static let smime = TestPaths.testData.appendingPathComponent("thunderbird-smime/smime")
    static let message = "Content-Type: text/plain\n\nNote to self.\n"

    init() throws {
        agent = try AgentFixture()
        peer = try OpenSSLPeer()
        _ = try peer.file("message.txt", text: Self.message)
    }

    deinit { _ = try? agent.signet(["agent", "stop"]) }

    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil) throws -> Run.Result {
        let result = try agent.signet(arguments, stdin: stdin)
        guard result.status == 0 else { throw TestFailure("signet \(arguments.joined(separator: " ")) exited \(result.status): \(result.errors)") }
        return result
    }

    /// A token with Bob's key and certificate, unlocked; returns what `signet import` printed.
    @discardableResult
    func tokenWithBob() throws -> Run.Result {
        try agent.makeToken("First", code: Self.code)
        let imported = try run(["import", Self.smime.appendingPathComponent("Bob.p12").path, "--password-fd", "0", "--code-fd", "0"],
                               stdin: "nss\n\(Self.code)\n")
        try run(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        return imported
    }

    @Test("encrypt --to FILE that does not exist says the file does not exist and names it")
    func missingRecipientFile() throws {
        try tokenWithBob()
        let result = try agent.signet(["encrypt", "--to", "bob.pem", "--in", peer.path("message.txt")])
        #expect(result.status == 1)
        #expect(result.errors.contains("The certificate file bob.pem does not exist."), "\(result.errors)")
        let path = try agent.signet(["encrypt", "--to", peer.path("nobody"), "--in", peer.path("message.txt")])
        #expect(path.errors.contains("The certificate file \(peer.path("nobody")) does not exist."), "\(path.errors)")
        // An address still means an address.
        let address = try agent.signet(["encrypt", "--to", "carol@example.org", "--in", peer.path("message.txt")])
        #expect(address.errors.contains("No certificate for carol@example.org is known."), "\(address.errors)")
    }

    @Test("encrypt without --to encrypts to your own certificate alone (and you can decrypt it); with no certificate of your own it refuses and says what to do")
    func encryptToSelf() throws {
        let refused = try agent.signet(["encrypt", "--in", peer.path("message.txt")])
        #expect(refused.status == 1)
        #expect(refused.errors.contains("No recipient was named and you have no encryption certificate of your own"), "\(refused.errors)")
        #expect(refused.errors.contains("--to"))

        try tokenWithBob()
        let out = peer.path("self.eml")
        let encrypted = try agent.signet(["encrypt", "--in", peer.path("message.txt"), "-o", out])
        #expect(encrypted.status == 0, "\(encrypted.errors)")
        #expect(encrypted.errors.contains("to Bob"), "\(encrypted.errors)")
        let decrypted = try run(["decrypt", "--in", out])
        #expect(decrypted.output.contains("Note to self."))
    }

    @Test("`signet import` prints the id `cert list` shows; `cert show|export` accept it and the PKCS#11 key id (whole or 8+ digits)")
    func oneID() throws {
        let imported = try tokenWithBob()
        let listed = try run(["cert", "list", "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: listed.stdout) as? [[String: Any]])
        let id = try #require(entries.first?["id"] as? String)
        #expect(imported.output.contains("(id \(id);"), "\(imported.output)")
        let keys = try run(["keys", "--json"])
        let objects = try #require(try JSONSerialization.jsonObject(with: keys.stdout) as? [[String: Any]])
        let keyID = try #require(objects.first { $0["kind"] as? String == "certificate" }?["id"] as? String)
        #expect(keyID != id)
        for name in [id, String(id.prefix(8)), keyID, String(keyID.prefix(8)), keyID.uppercased()] {
            let shown = try agent.signet(["cert", "show", name])
            #expect(shown.status == 0, "cert show \(name): \(shown.errors)")
            #expect(shown.output.contains("CN=Bob"))
        }
        let exported = try agent.signet(["cert", "export", String(keyID.prefix(8))])
        #expect(exported.status == 0 && exported.output.hasPrefix("-----BEGIN CERTIFICATE-----"), "\(exported.errors)")
        let unknown = try agent.signet(["cert", "show", "00000000"])
        #expect(unknown.status == 1)
        #expect(unknown.errors.contains("No certificate on the tokens has the id 00000000"))
    }

    /// A key and a self-signed certificate made by `openssl req -x509` (with `extensions`), imported as a .p12.
    func importSelfSigned(_ name: String, key: [String], extensions: [String] = []) throws {
        let keyFile = peer.path("\(name).key"), certificate = peer.path("\(name).pem"), p12 = peer.path("\(name).p12")
        try Run.checked("openssl", ["req", "-x509", "-newkey"] + key + ["-nodes", "-keyout", keyFile, "-out", certificate,
                                    "-subj", "/CN=\(name)", "-days", "30"] + extensions.flatMap { ["-addext", $0] })
        try Run.checked("openssl", ["pkcs12", "-export", "-inkey", keyFile, "-in", certificate, "-out", p12, "-passout", "pass:pw"])
        try run(["import", p12, "--password-fd", "0", "--code-fd", "0"], stdin: "pw\n\(Self.code)\n")
    }

    @Test("sign and encrypt with only unsuitable certificates say which certificates are present, why each does not qualify, and what to do")
    func whyNoCertificate() throws {
        try agent.makeToken("First", code: Self.code)
        try run(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        try importSelfSigned("Self Made", key: ["rsa:2048"])
        try importSelfSigned("Web Server", key: ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                             extensions: ["basicConstraints=CA:FALSE", "keyUsage=keyAgreement", "extendedKeyUsage=serverAuth"])
        let listed = try run(["cert", "list"])
        #expect(listed.output.contains("CN=Self Made") && listed.output.contains("CN=Web Server"))

        let sign = try agent.signet(["sign", "--in", peer.path("message.txt")])
        #expect(sign.status == 1)
        #expect(sign.errors.contains("No certificate on your tokens can sign mail. Present:"), "\(sign.errors)")
        #expect(sign.errors.contains("CN=Self Made: it is a CA certificate"), "\(sign.errors)")
        #expect(sign.errors.contains("CN=Web Server: no emailProtection extended key usage (it has serverAuth); no digitalSignature key usage (it has keyAgreement)"),
                "\(sign.errors)")
        #expect(sign.errors.contains("signet cert import FILE"))

        let encrypt = try agent.signet(["encrypt", "--in", peer.path("message.txt")])
        #expect(encrypt.status == 1)
        #expect(encrypt.errors.contains("No certificate on your tokens can encrypt mail to you. Present:"), "\(encrypt.errors)")
        #expect(encrypt.errors.contains("CN=Web Server: no emailProtection extended key usage (it has serverAuth)\n"), "\(encrypt.errors)")
        #expect(encrypt.errors.contains("--to"))
    }

    @Test("`signet log` names tokens and keys by label and programs by name; --wide and --json keep the full URIs and paths")
    func shortLog() throws {
        try tokenWithBob()
        try run(["sign", "--in", peer.path("message.txt"), "-o", peer.path("signed.eml")])
        let lines = try run(["log", "--action", "sign"]).output.split(separator: "\n")
        let line = try #require(lines.last)
        #expect(line.contains("token=First") && line.contains(" signet uid "), "\(line)")
        #expect(!line.contains("pkcs11:") && !line.contains(AgentFixture.signet), "\(line)")
        #expect(line.count < 160, "\(line.count) characters: \(line)")
        let wide = try #require(try run(["log", "--action", "sign", "--wide"]).output.split(separator: "\n").last)
        #expect(wide.contains("token=pkcs11:") && wide.contains("key=pkcs11:") && wide.contains(AgentFixture.signet), "\(wide)")
        let json = try #require(try run(["log", "--action", "sign", "--json"]).output.split(separator: "\n").last)
        #expect(json.contains("pkcs11:") && json.contains(AgentFixture.signet), "\(json)")
    }

    @Test("`signet version` names p11-kit, pcsc-lite and each loaded PKCS#11 module with its CK_INFO, quickly, even with a module that cannot load")
    func versions() throws {
        try agent.makeToken("First", code: Self.code)
        var config = try String(contentsOfFile: agent.paths.config + "/config", encoding: .utf8)
        config += "pkcs11-module = /nonexistent/libmissing.so\n"
        try config.write(toFile: agent.paths.config + "/config", atomically: true, encoding: .utf8)
        let started = Date()
        let result = try run(["version"])
        #expect(Date().timeIntervalSince(started) < 5)
        let text = result.output
        #expect(text.contains("OpenSSL: OpenSSL 3"), "\(text)")
        #expect(text.range(of: #"p11-kit: .*libp11-kit\.so"#, options: .regularExpression) != nil, "\(text)")
        #expect(text.range(of: #"pcsc-lite: .*libpcsclite\.so.*built with [0-9]"#, options: .regularExpression) != nil, "\(text)")
        // SoftHSM2's CK_INFO: libraryDescription, libraryVersion, manufacturer.
        #expect(text.range(of: #"libsofthsm2\.so\): Implementation of PKCS11 [0-9]+\.[0-9]+, by SoftHSM"#, options: .regularExpression) != nil, "\(text)")
        #expect(text.contains("/nonexistent/libmissing.so: could not be loaded"), "\(text)")
    }

    @Test("`signet report` holds the PKCS#11 modules with their versions and the recent errors from the audit log")
    func reportModulesAndErrors() throws {
        try agent.makeToken("First", code: Self.code)
        let wrong = try agent.signet(["unlock", "--code-fd", "0"], stdin: "not-the-code\n")
        #expect(wrong.status == 2)
        try run(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        let archive = peer.path("report.tar.gz")
        try run(["report", "--output", archive])
        let version = try Run.checked("tar", ["-xzOf", archive, "signet-report/version.txt"]).output
        #expect(version.range(of: #"libsofthsm2\.so\): Implementation of PKCS11 [0-9]+\.[0-9]+"#, options: .regularExpression) != nil, "\(version)")
        let errors = try Run.checked("tar", ["-xzOf", archive, "signet-report/errors.txt"]).output
        let lines = errors.split(separator: "\n")
        #expect(lines.count == 1, "\(errors)")
        #expect(errors.contains("unlock") && errors.contains("wrong-code") && errors.contains("token=pkcs11:"), "\(errors)")
    }
}
