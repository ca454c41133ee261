import Foundation
import SignetTestSupport
import Testing

/// `signet sign|verify|encrypt|decrypt` against the real agent and SoftHSM2, with OpenSSL,
/// GnuPG's gpgsm and NSS's cmsutil as independent peers checking Signet's output and writing
/// the messages Signet must open. Keys: Alice and Bob from Thunderbird's corpus (RSA-2048,
/// imported with `signet import`) and a P-256 key generated on the token and certified by an OpenSSL CA.
@Suite("S/MIME mail", .serialized)
final class MailTests {
    let agent: AgentFixture
    let peer: OpenSSLPeer
    static let code = "mail-1234"
    static let smime = TestPaths.testData.appendingPathComponent("thunderbird-smime/smime")
    static let testCA = smime.appendingPathComponent("TestCA.pem").path
    /// Before the corpus certificates expire (2031-01-26); the corpus was signed on 2026-01-26.
    static let pinned = "2026-02-01T00:00:00Z"
    static let message = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nHello Bob,\nthe r\u{e9}sum\u{e9} is attached.\n\n-- \nAlice\n"
    /// The canonical form (CRLF) every peer must see as the signed content.
    static var canonical: String { message.replacingOccurrences(of: "\n", with: "\r\n") }

    var ca: (key: String, certificate: String) = ("", "")
    var certificates: [String: String] = [:]  // name → Signet certificate id

    init() throws {
        agent = try AgentFixture()
        peer = try OpenSSLPeer()
        _ = try agent.makeToken("Mail", code: Self.code)
        for name in ["Alice", "Bob"] {
            try run(["import", Self.smime.appendingPathComponent("\(name).p12").path, "--password-fd", "0", "--code-fd", "0"], stdin: "nss\n\(Self.code)\n")
        }
        try run(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        // A P-256 key generated on the token, certified for mail by a CA made with OpenSSL.
        ca = (peer.path("ca.key"), peer.path("ca.pem"))
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca.key, "-out", ca.certificate,
                                    "-subj", "/C=CA/O=Mail Test CA/CN=Root", "-days", "30"])
        try run(["key", "generate", "--type", "p256", "--label", "p256-mail"])
        try run(["csr", "--key", "p256-mail", "--subject", "C=CA,ST=ON,O=Mail Test,CN=P256 Person", "--email", "p256@example.org",
                 "-o", peer.path("p256.csr")])
        let extensions = try peer.file("ext.cnf", text: """
            keyUsage=critical,digitalSignature,keyAgreement
            extendedKeyUsage=emailProtection
            subjectAltName=email:p256@example.org
            """)
        try Run.checked("openssl", ["x509", "-req", "-in", peer.path("p256.csr"), "-CA", ca.certificate, "-CAkey", ca.key, "-CAcreateserial",
                                    "-days", "10", "-extfile", extensions, "-out", peer.path("p256.pem")])
        try run(["cert", "import", peer.path("p256.pem"), "--trust-roots"])
        try run(["trust", "add", ca.certificate])
        try run(["trust", "add", Self.testCA])
        let listed = try run(["cert", "list", "--json"])
        for entry in try #require(try JSONSerialization.jsonObject(with: listed.stdout) as? [[String: Any]]) {
            guard let subject = entry["subject"] as? String, let id = entry["id"] as? String else { continue }
            for name in ["Alice", "Bob", "P256 Person"] where subject.hasSuffix("CN=\(name)") { certificates[name] = id }
        }
        guard certificates.count == 3 else { throw TestFailure("certificates not listed: \(certificates)") }
        _ = try peer.file("message.txt", text: Self.message)
        _ = try peer.file("canonical.txt", text: Self.canonical)
        _ = try Run.checked("/bin/sh", ["-c", "cat '\(ca.certificate)' '\(Self.testCA)' > '\(peer.path("roots.pem"))'"])
    }

    deinit {
        _ = try? agent.signet(["agent", "stop"])
        // gpgsm starts a gpg-agent for its home; it would outlive the test.
        if FileManager.default.fileExists(atPath: peer.path("gnupg")) {
            _ = try? Run.command("gpgconf", ["--kill", "gpg-agent"], environment: ["GNUPGHOME": peer.path("gnupg")])
        }
    }

    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil) throws -> Run.Result {
        let result = try agent.signet(arguments, stdin: stdin)
        guard result.status == 0 else { throw TestFailure("signet \(arguments.joined(separator: " ")) exited \(result.status): \(result.errors)") }
        return result
    }

    // MARK: Peers

    /// gpgsm with its own home, the two roots imported and marked trusted, CRL checks off (the test CAs publish none).
    func gpgsm() throws -> (home: String, run: ([String]) throws -> Run.Result) {
        let home = peer.path("gnupg")
        if !FileManager.default.fileExists(atPath: home) {
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try "disable-crl-checks\n".write(toFile: home + "/gpgsm.conf", atomically: true, encoding: .utf8)
            var trustlist = ""
            for root in [ca.certificate, Self.testCA] {
                let fingerprint = try Run.checked("openssl", ["x509", "-in", root, "-noout", "-fingerprint", "-sha1"]).output
                trustlist += (fingerprint.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines) + " S relax\n"
                try Run.checked("gpgsm", ["--batch", "--import", root], environment: ["GNUPGHOME": home])
            }
            try trustlist.write(toFile: home + "/trustlist.txt", atomically: true, encoding: .utf8)
        }
        return (home, { arguments in try Run.command("gpgsm", ["--batch"] + arguments, environment: ["GNUPGHOME": home]) })
    }

    /// An NSS certificate database with the two roots trusted for mail.
    func nssDatabase() throws -> String {
        let directory = peer.path("nss")
        if !FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Run.checked("certutil", ["-N", "-d", "sql:\(directory)", "--empty-password"])
            for (index, root) in [ca.certificate, Self.testCA].enumerated() {
                try Run.checked("certutil", ["-A", "-d", "sql:\(directory)", "-n", "root\(index)", "-t", "C,C,C", "-i", root])
            }
        }
        return "sql:\(directory)"
    }

    // MARK: Signing

    @Test("Signed by Signet (RSA and P-256; detached and opaque; SHA-256/384/512; RSA-PSS): OpenSSL, gpgsm and NSS cmsutil verify, Signet verifies, RSA signatures are the modulus length")
    func signMatrix() throws {
        var cases: [(String, [String])] = []
        for signer in ["Alice", "P256 Person"] {
            for digest in ["sha256", "sha384", "sha512"] { cases.append((signer, ["--digest", digest])) }
        }
        cases.append(("Alice", ["--pss"]))
        cases.append(("Alice", ["--pss", "--digest", "sha512"]))
        let gpg = try gpgsm()
        let nss = try nssDatabase()
        for (signer, options) in cases {
            let label = "\(signer) \(options.joined(separator: " "))"
            let id = try #require(certificates[signer])
            for opaque in [false, true] {
                let out = peer.path("signed.eml")
                try? FileManager.default.removeItem(atPath: out)
                try run(["sign", "--cert", id, "--in", peer.path("message.txt"), "-o", out] + options + (opaque ? ["--opaque"] : []))
                // OpenSSL: the MIME structure, the signature, the chain; the content is the canonical text.
                // (-binary only for opaque: OpenSSL 3.0's multipart reader leaves a stray CR on the content in binary mode.)
                let verified = try Run.command("openssl", ["cms", "-verify", "-in", out, "-CAfile", peer.path("roots.pem"), "-purpose", "smimesign",
                                                           "-out", peer.path("content.out")] + (opaque ? ["-binary"] : []))
                #expect(verified.status == 0, "openssl cms -verify, \(label), opaque \(opaque): \(verified.errors)")
                #expect(try peer.read("content.out") == Array(Self.canonical.utf8), "\(label) opaque \(opaque)")
                let header = String(decoding: try peer.read("signed.eml").prefix(300), as: UTF8.self)
                #expect(header.contains(opaque ? "smime-type=signed-data" : "multipart/signed"))
                let ours = try agent.signet(["verify", "--in", out, "--at", Dates.now])
                #expect(ours.status == 0, "signet verify \(label): \(ours.errors)")
                // The DER CMS for gpgsm and cmsutil.
                let der = peer.path("signed.der")
                if opaque {
                    try Run.checked("openssl", ["cms", "-cmsout", "-in", out, "-outform", "DER", "-out", der])
                } else {
                    try run(["sign", "--cert", id, "--in", peer.path("message.txt"), "--signature-only", "-o", der] + options)
                }
                let contentArgument = opaque ? [] : [peer.path("canonical.txt")]
                let gpgResult = try gpg.run(["--verify", der] + contentArgument)
                #expect(gpgResult.status == 0 && gpgResult.errors.contains("Good signature"), "gpgsm \(label) opaque \(opaque): \(gpgResult.errors)")
                let nssResult = try Run.command("cmsutil", ["-D", "-i", der, "-d", nss, "-u", "4", "-o", peer.path("nss.out")]
                                                + (opaque ? [] : ["-c", peer.path("canonical.txt")]))
                #expect(nssResult.status == 0 && !nssResult.output.contains("status ="), "cmsutil \(label) opaque \(opaque): \(nssResult.output) \(nssResult.errors)")
                if opaque { #expect(try peer.read("nss.out") == Array(Self.canonical.utf8)) }
                if signer == "Alice" {
                    // The signature value: an OCTET STRING of exactly 256 bytes, the last element of the SignerInfo.
                    let parsed = try Run.checked("openssl", ["asn1parse", "-inform", "DER", "-in", der]).output
                    let last = parsed.split(separator: "\n").last(where: { $0.contains("OCTET STRING") }) ?? ""
                    #expect(last.contains("l= 256"), "\(label): \(last)")
                    // SMIMECapabilities: the AES-CBC ciphers Signet decrypts, strongest first; never RC2, DES or 3DES.
                    let objects = parsed.split(separator: "\n").filter { $0.contains("OBJECT") }.compactMap { $0.split(separator: ":").last.map(String.init) }
                    let capabilities = objects.drop(while: { $0 != "S/MIME Capabilities" }).dropFirst().prefix(while: { $0.hasSuffix("-cbc") })
                    #expect(Array(capabilities) == ["aes-256-cbc", "aes-192-cbc", "aes-128-cbc"], "\(label): \(capabilities)")
                }
            }
        }
    }

    @Test("The daily cycle in one agent: sign, lock, unlock, sign, decrypt; then the idle lock, unlock, sign and decrypt again")
    func dailyCycle() throws {
        let note = peer.path("message.txt")
        let alice = try #require(certificates["Alice"])
        try run(["cert", "export", alice, "-o", peer.path("alice-own.pem")])
        try run(["encrypt", "--to", peer.path("alice-own.pem"), "--self", peer.path("alice-own.pem"), "--in", note, "-o", peer.path("to-alice.eml")])
        func signAndDecrypt(_ round: String) throws {
            try run(["sign", "--cert", alice, "--in", note, "-o", peer.path("signed-\(round).eml")])
            let verified = try Run.command("openssl", ["smime", "-verify", "-in", peer.path("signed-\(round).eml"), "-CAfile", Self.testCA, "-out", "/dev/null"])
            #expect(verified.status == 0, "\(round): \(verified.errors)")
            let decrypted = try run(["decrypt", "--in", peer.path("to-alice.eml")])
            #expect(decrypted.output.contains("the r\u{e9}sum\u{e9} is attached"), "\(round)")
        }
        try run(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        try signAndDecrypt("first")
        try run(["lock"])
        try run(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        try signAndDecrypt("after lock")

        // The idle lock: a tiny idle time, in force once `reload` answers; the agent's housekeeping (once a second,
        // on the agent's real clock: it runs in another process) locks the token, which the test polls for.
        let config = agent.paths.config + "/config"
        let original = try String(contentsOfFile: config, encoding: .utf8)
        try (original + "idle-lock-minutes = 0.001\n").write(toFile: config, atomically: true, encoding: .utf8)
        try agent.reload()
        #expect(try eventually(timeout: .seconds(10)) { try agent.signet(["status"]).output.contains("state:   locked") })
        try original.write(toFile: config, atomically: true, encoding: .utf8)
        try agent.reload()
        try run(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        try signAndDecrypt("after the idle lock")
    }

    @Test("Binary parts are signed byte for byte; text is canonicalised; a message of several MB streams through")
    func canonicalisation() throws {
        var binary: [UInt8] = Array("Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nline\n--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n".utf8)
        binary += [0x00, 0x0A, 0x0D, 0x0A, 0xFF, 0x0A, 0x0A] + (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        binary += Array("\n--b1--\n".utf8)
        let input = try peer.file("binary.eml", binary)
        let id = try #require(certificates["Alice"])
        try run(["sign", "--cert", id, "--opaque", "--in", input, "-o", peer.path("binary.signed")])
        try Run.checked("openssl", ["cms", "-verify", "-in", peer.path("binary.signed"), "-CAfile", Self.testCA, "-binary", "-out", peer.path("binary.out")])
        let signed = try peer.read("binary.out")
        // The binary body is unchanged; the text lines gained CRs.
        let bodyStart = try #require(binary.firstRange(of: [0x00, 0x0A, 0x0D, 0x0A, 0xFF]))
        let signedStart = try #require(signed.firstRange(of: [0x00, 0x0A, 0x0D, 0x0A, 0xFF]))
        #expect(Array(signed[signedStart.lowerBound..<(signedStart.lowerBound + 3_000_007)]) == Array(binary[bodyStart.lowerBound..<(bodyStart.lowerBound + 3_000_007)]))
        #expect(String(decoding: signed.prefix(80), as: UTF8.self).hasPrefix("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"))
    }

    // MARK: Verifying

    @Test("Thunderbird's signed corpus at a pinned time: good ones verify, SHA-1 is refused unless allowed, tampered and mismatched ones are bad, a wrong Date: is flagged")
    func corpus() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.smime.path).filter { $0.hasSuffix(".eml") }.sorted()
        var checked = 0
        for name in names where name.contains("sig") {
            let path = Self.smime.appendingPathComponent(name).path
            let result = try agent.signet(["verify", "--in", path, "--at", Self.pinned])
            let expected: Int32
            if name.contains(".bad.") || name.contains("mismatch-econtent") || name.hasPrefix("alice.env.dsig") {
                expected = 13  // tampered, or (alice.env.dsig: NSS's generator signed other ciphertext; OpenSSL agrees it does not verify)
            } else if name.contains("SHA1") {
                expected = 15
            } else if name.contains("future") {
                expected = 16
            } else {
                expected = 0
            }
            #expect(result.status == expected, "\(name): \(result.errors)")
            if expected == 15 {
                let allowed = try agent.signet(["verify", "--in", path, "--at", Self.pinned, "--allow-sha1"])
                #expect(allowed.status == 0, "\(name) with --allow-sha1: \(allowed.errors)")
            }
            if expected == 0 { #expect(result.errors.contains("good signature")) }
            checked += 1
        }
        #expect(checked == 65)
        // After the certificates expire, checking at that time says so.
        let late = try agent.signet(["verify", "--in", Self.smime.appendingPathComponent("alice.sig.SHA256.opaque.eml").path, "--at", "2031-06-01"])
        #expect(late.status == 14 && late.errors.contains("expired"), "\(late.errors)")
        // Without the trust anchor, a good signature is untrusted.
        _ = try agent.signet(["trust", "remove", "ce2f0804d61de9f1"])
        let untrusted = try agent.signet(["verify", "--in", Self.smime.appendingPathComponent("alice.dsig.SHA256.multipart.eml").path, "--at", Self.pinned])
        #expect(untrusted.status == 14, "\(untrusted.errors)")
        let given = try agent.signet(["verify", "--in", Self.smime.appendingPathComponent("alice.dsig.SHA256.multipart.eml").path, "--at", Self.pinned,
                                      "--trust", Self.testCA, "--json"])
        #expect(given.status == 0, "\(given.errors)")
        let report = try #require(try JSONSerialization.jsonObject(with: given.stdout) as? [[String: String]])
        #expect(report.first?["digest"] == "SHA256" && report.first?["trust"] == "trusted")
    }

    @Test("Every enveloped message of Thunderbird's corpus decrypts to the same bytes as OpenSSL with Bob's key, nested layers reported")
    func corpusDecrypt() throws {
        try Run.checked("openssl", ["pkcs12", "-in", Self.smime.appendingPathComponent("Bob.p12").path, "-passin", "pass:nss", "-nodes", "-out", peer.path("bob.pem")])
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.smime.path).filter { $0.hasSuffix(".eml") && $0.contains("env") }.sorted()
        for name in names {
            let path = Self.smime.appendingPathComponent(name).path
            let result = try agent.signet(["decrypt", "--in", path, "--at", Self.pinned, "--allow-sha1"])
            #expect(result.status == 0, "\(name): \(result.errors)")
            #expect(result.errors.contains("decrypted"))
            // The innermost content: what Alice wrote.
            #expect(result.output.contains("This is a test message from Alice to Bob.") || result.output.contains("<html"), "\(name): \(result.output.prefix(200))")
        }
        #expect(names.count == 29)
        // The plain enveloped message: byte for byte what OpenSSL gets.
        let path = Self.smime.appendingPathComponent("alice.env.eml").path
        let expected = try Run.checked("openssl", ["cms", "-decrypt", "-in", path, "-inkey", peer.path("bob.pem"), "-binary"]).stdout
        #expect(try agent.signet(["decrypt", "--in", path]).stdout == expected)
        // A signed-then-encrypted message reports both layers.
        let nested = try agent.signet(["decrypt", "--in", Self.smime.appendingPathComponent("alice.sig.SHA256.opaque.env.eml").path, "--at", Self.pinned])
        #expect(nested.errors.contains("Layer 1: encrypted") && nested.errors.contains("Layer 2: signed by Alice"), "\(nested.errors)")
    }

    @Test("Revocation: --crl with the CA's CRL (empty: good; listing the signer: revoked), --fetch-crl from the certificate's distribution point over HTTP, a CRL that cannot be fetched leaves the signer unchecked (14)")
    func revocation() throws {
        let served = peer.path("crl")
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
        let server = try LocalHTTPServer(directory: served)
        defer { server.stop() }
        // The CA's server is on this machine: a loopback address, fetched from only when configured.
        let configFile = agent.paths.config + "/config"
        try (try String(contentsOfFile: configFile, encoding: .utf8) + "crl-fetch-local = yes\n").write(toFile: configFile, atomically: true, encoding: .utf8)
        // A second certificate for the token's P-256 key that names a CRL distribution point on the local server.
        let extensions = try peer.file("cdp.cnf", text: """
            keyUsage=critical,digitalSignature,keyAgreement
            extendedKeyUsage=emailProtection
            subjectAltName=email:p256@example.org
            crlDistributionPoints=URI:\(server.url("root.crl"))
            """)
        let leaf = peer.path("p256-cdp.pem")
        try Run.checked("openssl", ["x509", "-req", "-in", peer.path("p256.csr"), "-CA", ca.certificate, "-CAkey", ca.key, "-set_serial", "4242",
                                    "-days", "10", "-extfile", extensions, "-out", leaf])
        try run(["cert", "import", leaf, "--replace"])
        let listed = try #require(try JSONSerialization.jsonObject(with: try run(["cert", "list", "--json"]).stdout) as? [[String: Any]])
        let id = try #require(listed.first { $0["serial"] as? String == "1092" }?["id"] as? String)
        let signed = peer.path("revocation.eml")
        try run(["sign", "--cert", id, "--in", peer.path("message.txt"), "-o", signed])
        // The CA's database and CRLs, made with `openssl ca`.
        let config = try peer.file("ca.cnf", text: "[ca]\ndefault_ca=d\n[d]\ndatabase=\(peer.path("index.txt"))\ncrlnumber=\(peer.path("crlnumber"))\ndefault_md=sha256\ndefault_crl_days=30\n")
        _ = try peer.file("index.txt", text: "")
        _ = try peer.file("crlnumber", text: "01\n")
        let ca = ["-config", config, "-keyfile", self.ca.key, "-cert", self.ca.certificate]
        try Run.checked("openssl", ["ca", "-gencrl", "-out", peer.path("empty.crl")] + ca)
        try Run.checked("openssl", ["ca", "-revoke", leaf] + ca)
        try Run.checked("openssl", ["ca", "-gencrl", "-out", peer.path("revoked.crl")] + ca)

        #expect(try agent.signet(["verify", "--in", signed, "--crl", peer.path("empty.crl")]).status == 0)
        let revoked = try agent.signet(["verify", "--in", signed, "--crl", peer.path("revoked.crl")])
        #expect(revoked.status == 14 && revoked.errors.contains("revoked"), "\(revoked.status): \(revoked.errors)")

        try Run.checked("openssl", ["crl", "-in", peer.path("revoked.crl"), "-outform", "DER", "-out", served + "/root.crl"])
        let fetched = try agent.signet(["verify", "--in", signed, "--fetch-crl"])
        #expect(fetched.status == 14 && fetched.errors.contains("revoked"), "\(fetched.status): \(fetched.errors)")
        #expect(server.requested.contains("/root.crl"))
        try FileManager.default.removeItem(atPath: served + "/root.crl")
        try Run.checked("openssl", ["crl", "-in", peer.path("empty.crl"), "-outform", "DER", "-out", served + "/root.crl"])
        let current = try agent.signet(["verify", "--in", signed, "--fetch-crl"])
        #expect(current.status == 0, "\(current.errors)")
        // The CA's server answers 404: revocation cannot be checked, so the signer is not trusted (as gpgsm does).
        try FileManager.default.removeItem(atPath: served + "/root.crl")
        let unreachable = try agent.signet(["verify", "--in", signed, "--fetch-crl"])
        #expect(unreachable.status == 14 && unreachable.errors.contains("could not fetch"), "\(unreachable.status): \(unreachable.errors) \(unreachable.output)")
    }

    @Test("Bad input: garbage, plain text, truncated and oversized messages get exit 10 and a message, never a crash")
    func badInput() throws {
        #expect(try agent.signet(["verify", "--in", try peer.file("garbage", (0..<4000).map { _ in UInt8.random(in: 0...255) })]).status == 10)
        #expect(try agent.signet(["verify", "--in", peer.path("message.txt")]).status == 10)
        // OpenSSL's own reason is part of the message (its error texts are loaded): a whole DER element, but not CMS.
        func smime(_ base64: String) -> [UInt8] {
            Array("MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n\(base64)\r\n".utf8)
        }
        let unreadable = try agent.signet(["verify", "--in", try peer.file("undecodable.eml", smime("MAMCAQE="))])
        #expect(unreadable.status == 10 && (unreadable.output + unreadable.errors).contains("asn1 encoding routines"), "\(unreadable.output) \(unreadable.errors)")
        // One that promises 256 bytes and holds 2 is truncated, and says so.
        let short = try agent.signet(["verify", "--in", try peer.file("short.eml", smime("MIIBAAAA"))])
        #expect(short.status == 10 && short.errors.contains("truncated"), "\(short.errors)")
        let whole = try Data(contentsOf: Self.smime.appendingPathComponent("alice.sig.SHA256.opaque.eml"))
        for cut in [200, whole.count / 2, whole.count - 40] {
            let truncated = try peer.file("truncated.eml", Array(whole.prefix(cut)))
            let result = try agent.signet(["verify", "--in", truncated])
            #expect(result.status == 10 && result.errors.contains("the message is truncated"), "cut at \(cut): \(result.status) \(result.errors)")
        }
        let result = try agent.signet(["verify", "--signature", peer.path("message.txt"), "--content", peer.path("message.txt")])
        #expect(result.status == 10)
    }

    // MARK: Encrypting and decrypting

    @Test("Messages encrypted by OpenSSL (AES-CBC 128/192/256, AES-GCM, 3DES with a warning, OAEP, ECDH P-256), NSS cmsutil and gpgsm decrypt to the original bytes")
    func peersEncrypt() throws {
        let alice = peer.path("alice-cert.pem"), p256 = peer.path("p256.pem")
        try run(["cert", "export", try #require(certificates["Alice"]), "-o", alice])
        let plain = peer.path("canonical.txt")
        var cases: [(String, [String], String)] = [
            ("aes128", ["-aes128"], alice), ("aes192", ["-aes192"], alice), ("aes256", ["-aes256"], alice),
            ("aes-256-gcm", ["-aes-256-gcm"], alice), ("des3", ["-des3"], alice),
            ("oaep", ["-aes256", "-keyopt", "rsa_padding_mode:oaep"], alice),
            ("oaep-sha256", ["-aes256", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256"], alice),
            ("ecdh-sha256", ["-aes128", "-keyopt", "ecdh_kdf_md:sha256"], p256),
            ("ecdh-sha512", ["-aes256", "-keyopt", "ecdh_kdf_md:sha512"], p256),
        ]
        cases.append(("ecdh-gcm", ["-aes-256-gcm", "-keyopt", "ecdh_kdf_md:sha384"], p256))
        for (name, options, recipient) in cases {
            let out = peer.path("openssl-\(name).eml")
            try Run.checked("openssl", ["cms", "-encrypt", "-in", plain, "-binary", "-out", out] + options.filter { !$0.hasPrefix("-keyopt") && !$0.contains(":") }
                            + ["-recip", recipient] + options.filter { $0.hasPrefix("-keyopt") || $0.contains(":") })
            let result = try agent.signet(["decrypt", "--in", out])
            #expect(result.status == 0, "openssl \(name): \(result.errors)")
            #expect(result.output == Self.canonical, "openssl \(name)")
            if name == "des3" { #expect(result.errors.contains("3DES"), "\(result.errors)") }
        }
        // NSS: cmsutil -E to Alice's certificate, DER output.
        let nss = try nssDatabase()
        try Run.checked("certutil", ["-A", "-d", nss, "-n", "alice", "-t", ",,", "-i", alice])
        try Run.checked("cmsutil", ["-E", "-r", "Alice@example.com", "-d", nss, "-i", plain, "-o", peer.path("nss.der")])
        let fromNSS = try agent.signet(["decrypt", "--in", peer.path("nss.der")])
        #expect(fromNSS.status == 0 && fromNSS.output == Self.canonical, "cmsutil: \(fromNSS.errors)")
        // gpgsm --encrypt to Alice (gpgsm 2.2 in Debian 12 has no ECDH encryption; it came with GnuPG 2.3).
        let gpg = try gpgsm()
        for (name, certificate, address) in [("rsa", alice, "Alice@example.com")] {
            _ = try gpg.run(["--import", certificate])
            let encrypted = try gpg.run(["--encrypt", "-r", address, "--output", peer.path("gpgsm-\(name).der"), plain])
            #expect(encrypted.status == 0, "gpgsm --encrypt \(name): \(encrypted.errors)")
            let result = try agent.signet(["decrypt", "--in", peer.path("gpgsm-\(name).der")])
            #expect(result.status == 0 && result.output == Self.canonical, "gpgsm \(name): \(result.errors)")
        }
    }

    @Test("A 70 MB message, larger than any message held in memory, decrypts as it streams (AES-CBC in MIME, AES-GCM in DER) with flat memory; a signed layer that large inside is not checked and says so; a changed GCM message and a truncated one leave no plaintext")
    func streamedDecrypt() throws {
        let bob = peer.path("bob-cert.pem")
        try run(["cert", "export", try #require(certificates["Bob"]), "-o", bob])
        let big = peer.path("big.txt")
        let line = Array("Streaming test line: the quick brown fox jumps over the lazy dog 0123456789.\r\n".utf8)
        let block = Data((0..<(1 << 20) / line.count).flatMap { _ in line })
        _ = FileManager.default.createFile(atPath: big, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        for _ in 0..<70 { try handle.write(contentsOf: block) }
        try handle.close()
        for (name, options) in [("cbc.eml", ["-aes256"]), ("gcm.der", ["-aes-256-gcm", "-outform", "DER"])] {
            let encrypted = peer.path(name), out = peer.path(name + ".out")
            try Run.checked("openssl", ["cms", "-encrypt", "-binary", "-stream", "-in", big, "-out", encrypted] + options + ["-recip", bob])
            // GNU time reports the peak memory of signet alone (a child spawned from this test process would
            // inherit the test's own high-water mark in ru_maxrss).
            let peak = peer.path(name + ".peak")
            let result = try agent.signet(["decrypt", "--in", encrypted, "-o", out], measuringPeakMemoryTo: peak)
            #expect(result.status == 0, "\(name): \(result.errors)")
            #expect(try Run.command("cmp", [big, out]).status == 0, "\(name): the plaintext differs")
            // The Swift runtime alone is about 30 MiB; holding the message would take several times 70 MB.
            let kib = Int(try String(contentsOfFile: peak, encoding: .utf8).split(separator: "\n").last ?? "") ?? .max
            #expect(kib < 40 << 10, "\(name): peak memory \(kib) KiB")
        }
        // Signed, then encrypted, all 70 MB: the signature inside is too large to check in memory; that is said, with exit 14.
        let signed = peer.path("big-signed.eml"), nested = peer.path("nested.eml"), opened = peer.path("nested.out")
        try run(["sign", "--binary", "--in", big, "-o", signed])
        try Run.checked("openssl", ["cms", "-encrypt", "-binary", "-stream", "-in", signed, "-out", nested, "-aes256", "-recip", bob])
        let inner = try agent.signet(["decrypt", "--in", nested, "-o", opened])
        #expect(inner.status == 14 && inner.errors.contains("NOT checked"), "\(inner.status): \(inner.errors)")
        #expect(try Run.command("cmp", [signed, opened]).status == 0, "the signed layer is not written as it is")
        // One changed byte in the middle of the GCM ciphertext: the tag does not match, nothing is written.
        let tampered = peer.path("tampered.der")
        try FileManager.default.copyItem(atPath: peer.path("gcm.der"), toPath: tampered)
        let file = try FileHandle(forUpdating: URL(fileURLWithPath: tampered))
        let size = try file.seekToEnd()
        try file.seek(toOffset: size / 2)
        let byte = try #require(try file.read(upToCount: 1)).first ?? 0
        try file.seek(toOffset: size / 2)
        try file.write(contentsOf: [byte ^ 0x01])
        try file.close()
        let changed = try agent.signet(["decrypt", "--in", tampered, "-o", peer.path("tampered.out")])
        #expect(changed.status == 12 && changed.errors.contains("changed or damaged"), "\(changed.status): \(changed.errors)")
        #expect(!FileManager.default.fileExists(atPath: peer.path("tampered.out")))
        let toStdout = try agent.signet(["decrypt", "--in", tampered])
        #expect(toStdout.status == 12 && toStdout.stdout.isEmpty, "\(toStdout.status), \(toStdout.stdout.count) bytes out")
        // Cut off part way: reported as damaged, nothing written.
        let truncated = try peer.file("truncated.eml", Array(try Data(contentsOf: URL(fileURLWithPath: peer.path("cbc.eml"))).prefix(5 << 20)))
        let cut = try agent.signet(["decrypt", "--in", truncated, "-o", peer.path("truncated.out")])
        #expect(cut.status == 12 && cut.errors.contains("truncated"), "\(cut.status): \(cut.errors)")
        #expect(!FileManager.default.fileExists(atPath: peer.path("truncated.out")))
    }

    @Test("signet encrypt: to a recipient and to yourself; AES-256-CBC, AES-256-GCM, OAEP and EC recipients; OpenSSL decrypts with the recipient's key, Signet with yours")
    func encrypt() throws {
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("carol.key"), "-out", peer.path("carol.pem"),
                                    "-subj", "/CN=Carol", "-days", "2", "-addext", "keyUsage=keyEncipherment", "-addext", "subjectAltName=email:carol@example.net"])
        try Run.checked("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", peer.path("erin.key"),
                                    "-out", peer.path("erin.pem"), "-subj", "/CN=Erin", "-days", "2", "-addext", "keyUsage=keyAgreement"])
        for (name, options, recipient) in [("default", [String](), "carol"), ("gcm", ["--cipher", "aes256-gcm"], "carol"), ("oaep", ["--oaep"], "carol"),
                                           ("ec", [], "erin"), ("ec-gcm", ["--cipher", "aes128-gcm"], "erin")] {
            let out = peer.path("encrypted-\(name).eml")
            try run(["encrypt", "--to", peer.path("\(recipient).pem"), "--in", peer.path("message.txt"), "-o", out] + options)
            let header = String(decoding: try peer.read("encrypted-\(name).eml").prefix(200), as: UTF8.self)
            #expect(header.contains(name.contains("gcm") ? "authEnveloped-data" : "enveloped-data"), "\(name): \(header)")
            let theirs = try Run.command("openssl", ["cms", "-decrypt", "-in", out, "-inkey", peer.path("\(recipient).key"), "-recip", peer.path("\(recipient).pem"), "-binary"])
            #expect(theirs.status == 0 && theirs.output == Self.canonical, "openssl decrypt \(name): \(theirs.errors)")
            let printed = try Run.checked("openssl", ["cms", "-cmsout", "-print", "-in", out]).output
            if name == "default" { #expect(printed.contains("aes-256-cbc")) }
            if name == "oaep" { #expect(printed.contains("rsaesOaep")) }
            let ours = try agent.signet(["decrypt", "--in", out])
            #expect(ours.status == 0 && ours.output == Self.canonical, "signet decrypt (sender's copy) \(name): \(ours.errors)")
        }
        // By address, once a signed message from that person was verified.
        try run(["verify", "--in", Self.smime.appendingPathComponent("alice.plain.sig.SHA256.opaque.dave.sig.SHA256.opaque.eml").path, "--at", Self.pinned])
        try run(["encrypt", "--to", "dave@example.com", "--in", peer.path("message.txt"), "-o", peer.path("to-dave.eml")])
        try Run.checked("openssl", ["pkcs12", "-in", Self.smime.appendingPathComponent("Dave.p12").path, "-passin", "pass:nss", "-nodes", "-out", peer.path("dave.pem")])
        let dave = try Run.command("openssl", ["cms", "-decrypt", "-in", peer.path("to-dave.eml"), "-inkey", peer.path("dave.pem"), "-binary"])
        #expect(dave.status == 0 && dave.output == Self.canonical, "\(dave.errors)")
        let unknown = try agent.signet(["encrypt", "--to", "nobody@example.com", "--in", peer.path("message.txt"), "-o", peer.path("nobody.eml")])
        #expect(unknown.status == 1 && unknown.errors.contains("No certificate for nobody@example.com"))
        #expect(!FileManager.default.fileExists(atPath: peer.path("nobody.eml")))
    }

    @Test("What signet encrypt writes, NSS cmsutil and gpgsm decrypt with Alice's key (RSA PKCS#1 v1.5; AES-256-CBC and AES-128-CBC)")
    func peersDecrypt() throws {
        let alice = peer.path("alice-cert.pem")
        try run(["cert", "export", try #require(certificates["Alice"]), "-o", alice])
        let plain = peer.path("canonical.txt")
        // NSS: Alice's key from her PKCS#12 file in a fresh database.
        let nss = try nssDatabase()
        try Run.checked("pk12util", ["-i", Self.smime.appendingPathComponent("Alice.p12").path, "-d", nss, "-W", "nss", "-K", ""])
        // gpgsm 2.2 reads only PKCS#12 files protected the old way (3DES): re-wrap Alice's with OpenSSL.
        let gpg = try gpgsm()
        try "allow-loopback-pinentry\n".write(toFile: gpg.home + "/gpg-agent.conf", atomically: true, encoding: .utf8)
        let pem = peer.path("alice-all.pem"), legacy = peer.path("alice-legacy.p12")
        try Run.checked("openssl", ["pkcs12", "-in", Self.smime.appendingPathComponent("Alice.p12").path, "-passin", "pass:nss", "-nodes", "-out", pem])
        try Run.checked("openssl", ["pkcs12", "-export", "-in", pem, "-passout", "pass:nss", "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES",
                                    "-macalg", "sha1", "-out", legacy])
        let loopback = ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
        let imported = try Run.command("gpgsm", ["--batch"] + loopback + ["--import", legacy], stdin: Data("nss\n".utf8),
                                       environment: ["GNUPGHOME": gpg.home])
        #expect(imported.status == 0, "gpgsm --import: \(imported.errors)")
        for (name, options) in [("aes256-cbc", [String]()), ("aes128-cbc", ["--cipher", "aes128-cbc"])] {
            let out = peer.path("signet-\(name).der")
            try run(["encrypt", "--der", "--to", alice, "--in", plain, "-o", out] + options)
            let fromNSS = try Run.command("cmsutil", ["-D", "-i", out, "-d", nss, "-p", ""])
            #expect(fromNSS.status == 0 && fromNSS.output == Self.canonical, "cmsutil \(name): \(fromNSS.errors)")
            let fromGPG = try Run.command("gpgsm", ["--batch"] + loopback + ["--decrypt", out], stdin: Data("nss\n".utf8),
                                          environment: ["GNUPGHOME": gpg.home])
            #expect(fromGPG.status == 0 && fromGPG.output == Self.canonical, "gpgsm \(name): \(fromGPG.errors)")
        }
    }

    @Test("The command forms in docs/mail.md's mutt recipe: DER signature and encryption, detached and opaque DER verification, DER decryption")
    func muttForms() throws {
        let id = try #require(certificates["Alice"])
        // smime_sign_command: signature only, DER, over the file mutt wrote.
        let signed = try run(["sign", "--quiet", "--cert", id, "--in", peer.path("message.txt"), "--signature-only", "--digest", "sha256",
                              "-o", peer.path("mutt.p7s")])
        #expect(signed.errors.isEmpty, "--quiet printed: \(signed.errors)")
        // smime_verify_command: signature %s, content %f (mutt hands over the canonical content).
        let detached = try agent.signet(["verify", "--signature", peer.path("mutt.p7s"), "--content", peer.path("canonical.txt")])
        #expect(detached.status == 0, "\(detached.errors)")
        // mutt and neomutt call a signature good only when this is the first line of standard error (OpenSSL's convention).
        #expect(detached.errors.hasPrefix("Verification successful\n"), "\(detached.errors)")
        let wrong = try peer.file("wrong.txt", text: Self.canonical + "x")
        let bad = try agent.signet(["verify", "--signature", peer.path("mutt.p7s"), "--content", wrong])
        #expect(bad.status == 13 && !bad.errors.contains("Verification successful"), "\(bad.errors)")
        // smime_verify_opaque_command: DER in, content out.
        try run(["sign", "--cert", id, "--in", peer.path("message.txt"), "--opaque", "-o", peer.path("opaque.eml")])
        try Run.checked("openssl", ["cms", "-cmsout", "-in", peer.path("opaque.eml"), "-outform", "DER", "-out", peer.path("opaque.der")])
        let opaque = try agent.signet(["verify", "--in", peer.path("opaque.der"), "--out", "-"])
        #expect(opaque.status == 0 && opaque.output == Self.canonical, "\(opaque.errors)")
        #expect(opaque.errors.hasPrefix("Verification successful\n"), "\(opaque.errors)")
        // smime_encrypt_command: DER out, recipients' certificate files as arguments (%c); smime_decrypt_command: DER in.
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("dan.key"), "-out", peer.path("dan.pem"),
                                    "-subj", "/CN=Dan", "-days", "2", "-addext", "keyUsage=keyEncipherment"])
        let encrypted = try run(["encrypt", "--quiet", "--der", "--in", peer.path("message.txt"), "-o", peer.path("mutt.p7m"), peer.path("dan.pem")])
        #expect(encrypted.errors.isEmpty, "--quiet printed: \(encrypted.errors)")
        let theirs = try Run.command("openssl", ["cms", "-decrypt", "-inform", "DER", "-in", peer.path("mutt.p7m"), "-inkey", peer.path("dan.key"), "-binary"])
        #expect(theirs.status == 0 && theirs.output == Self.canonical, "\(theirs.errors)")
        let ours = try agent.signet(["decrypt", "--in", peer.path("mutt.p7m")])
        #expect(ours.status == 0 && ours.output == Self.canonical, "\(ours.errors)")
    }

    @Test("signet verify says it signer by signer: RSA and Ed25519 good, one algorithm it cannot check named, exit 15 without 'Verification successful', the content still written, --json one object each; a detached signature at --in asks for --content; a message for a shared key names it")
    func perSignerReport() throws {
        let pki = try TestPKI()
        let alice = try pki.person("Alice", algorithm: "rsa:2048"), carlos = try pki.person("Carlos", algorithm: "ed25519")
        var unknown = CMSBuilder.Signer.rsa(try pki.person("Bob", algorithm: "rsa:2048"))
        unknown.signatureAlgorithm = "1.3.6.1.4.1.55555.1.1"
        let three = try peer.file("three.der", try CMSBuilder.signed(Array(Self.canonical.utf8), signers: [.rsa(alice), .ed25519(carlos), unknown]))
        let result = try agent.signet(["verify", "--in", three, "--trust", pki.root, "--out", "-"])
        #expect(result.status == 15, "\(result.errors)")
        #expect(!result.errors.contains("Verification successful") && !result.errors.contains("BAD") && !result.errors.contains("changed after signing"), "\(result.errors)")
        #expect(result.errors.components(separatedBy: ": good signature").count - 1 == 2, "\(result.errors)")
        #expect(result.errors.contains("signed by Carlos <carlos@example.org>: good signature") && result.errors.contains("algorithms: SHA512 with ED25519"))
        #expect(result.errors.contains("cannot check the signature of Bob <bob@example.org>: Signet cannot verify 1.3.6.1.4.1.55555.1.1"), "\(result.errors)")
        #expect(result.output == Self.canonical)
        let json = try agent.signet(["verify", "--in", three, "--trust", pki.root, "--json"])
        let objects = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [[String: String]])
        #expect(objects.compactMap { $0["result"] }.sorted() == ["good", "good", "unsupported-algorithm"], "\(objects)")

        try Run.checked("openssl", ["cms", "-sign", "-binary", "-in", peer.path("canonical.txt"), "-outform", "DER", "-out", peer.path("detached.p7s"),
                                    "-signer", pki.peer.path("Alice.pem"), "-inkey", pki.peer.path("Alice.key")])
        let detached = try agent.signet(["verify", "--in", peer.path("detached.p7s")])
        #expect(detached.status == 10 && detached.errors.contains("this signature is detached; give the signed content with --content"), "\(detached.errors)")

        try Run.checked("openssl", ["cms", "-encrypt", "-aes256", "-in", peer.path("canonical.txt"), "-outform", "DER", "-out", peer.path("kek.der"),
                                    "-secretkey", String(repeating: "0f", count: 32), "-secretkeyid", "c0ffee01"])
        let kek = try agent.signet(["decrypt", "--in", peer.path("kek.der")])
        #expect(kek.status == 11 && kek.errors.contains("it is for: a shared key-encryption key with key identifier c0ffee01 (KEKRecipientInfo)"), "\(kek.errors)")
    }

    /// The settings block of docs/mail.md's "mutt and neomutt" section, as a user would copy it.
    static func muttRecipe() throws -> String {
        let doc = try String(contentsOf: TestPaths.repository.appendingPathComponent("docs/mail.md"), encoding: .utf8)
        guard let section = doc.range(of: "## mutt and neomutt"),
              let open = doc.range(of: "```\n", range: section.upperBound..<doc.endIndex),
              let close = doc.range(of: "```", range: open.upperBound..<doc.endIndex) else {
            throw TestFailure("docs/mail.md has no settings block under \"## mutt and neomutt\"")
        }
        return String(doc[open.upperBound..<close.lowerBound])
    }

    @Test("Debian's neomutt, driven in a terminal (tmux) with docs/mail.md's settings: sends mail signed on the token (OpenSSL and Signet verify it), shows it as verified, and opens mail encrypted to the token")
    func neomutt() throws {
        let id = try #require(certificates["Alice"])
        let directory = peer.path("neomutt")
        for folder in [directory + "/mail", agent.home.path + "/.local/share/signet/mutt"] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        // Alice has several certificates on the token: pin hers for signing, as the recipe says.
        let config = try FileHandle(forWritingTo: URL(fileURLWithPath: agent.paths.config + "/config"))
        try config.seekToEnd()
        try config.write(contentsOf: Data("signing-certificate = \(id)\n".utf8))
        try config.close()
        // neomutt hands the finished message to its sendmail: here, a script that keeps it.
        let sendmail = try peer.file("neomutt/sendmail", text: "#!/bin/sh\ncat > '\(directory)/sent.eml'\n")
        chmod(sendmail, 0o755)
        let muttrc = try peer.file("neomutt/muttrc", text: try Self.muttRecipe() + """
            set folder = \(directory)/mail
            set spoolfile = \(directory)/mail/inbox
            set record = ""
            set postpone = no
            set sendmail = "\(sendmail)"
            set from = "Alice <alice@example.com>"
            set use_from = yes
            set editor = "true"
            set crypt_autosign = yes

            """)
        let draft = try peer.file("neomutt/draft.eml", text: "To: bob@example.com\nSubject: Signed by neomutt\n\nHello Bob,\nthis was signed on the token.\n")
        var environment = agent.environment
        environment["PATH"] = TestPaths.binaries.path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        let terminal = try TerminalSession("neomutt -n -F '\(muttrc)' -H '\(draft)'", socketDirectory: directory, environment: environment)
        // neomutt offers the draft's To: and Subject: for editing, then its compose menu; "y" sends.
        try terminal.waitFor("To: bob@example.com")
        try terminal.send("Enter")
        try terminal.waitFor("Subject: Signed by neomutt")
        try terminal.send("Enter")
        let compose = try terminal.waitFor("NeoMutt: Compose")
        #expect(compose.contains("Sign (S/MIME)"), "\(compose)")
        try terminal.send("y")
        // mutt asks for the passphrase it would give OpenSSL; Signet needs none (the token is unlocked).
        try terminal.waitFor("S/MIME passphrase")
        try terminal.send("Enter")
        let sent = directory + "/sent.eml"
        let delivered = eventually(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: sent) && !terminal.screen.contains("Compose") }
        #expect(delivered, "neomutt did not send; the terminal shows:\n\(terminal.screen)")
        let message = try String(contentsOfFile: sent, encoding: .utf8)
        #expect(message.contains("Content-Type: multipart/signed") && message.contains("micalg=sha-256"), "\(message)")
        let verified = try Run.command("openssl", ["cms", "-verify", "-in", sent, "-CAfile", Self.testCA])
        #expect(verified.status == 0 && verified.output.contains("this was signed on the token."), "\(verified.errors)")
        let ours = try agent.signet(["verify", "--in", sent])
        #expect(ours.status == 0 && ours.errors.contains("signed by Alice") && ours.errors.contains("matches the certificate"), "\(ours.errors)")

        // Reading it back: neomutt runs smime_verify_command on the signature, then checks the signer's
        // address against From: with the two OpenSSL commands of the recipe, and says so on its status line.
        let maildir = directory + "/read"
        for folder in ["cur", "new", "tmp"] {
            try FileManager.default.createDirectory(atPath: maildir + "/" + folder, withIntermediateDirectories: true)
        }
        try message.write(toFile: maildir + "/new/1.signet:2,", atomically: true, encoding: .utf8)
        let readerDirectory = directory + "/reader"
        try FileManager.default.createDirectory(atPath: readerDirectory, withIntermediateDirectories: true)
        let reader = try TerminalSession("neomutt -n -F '\(muttrc)' -f '\(maildir)'", socketDirectory: readerDirectory, environment: environment)
        try reader.waitFor("Signed by neomutt")
        try reader.send("Enter")
        let shown = try reader.waitFor("S/MIME signature successfully verified", timeout: .seconds(30))
        #expect(shown.contains("this was signed on the token."), "\(shown)")

        // Two signers: Alice (good, trusted) and one whose algorithm Signet cannot check. The verify command exits 15
        // and says so signer by signer; neomutt, which wants exit 0 and "Verification successful", does not call it good.
        try Run.checked("openssl", ["pkcs12", "-in", Self.smime.appendingPathComponent("Alice.p12").path, "-passin", "pass:nss", "-nodes", "-legacy",
                                    "-nocerts", "-out", peer.path("neomutt/alice.key")])
        try Run.checked("openssl", ["pkcs12", "-in", Self.smime.appendingPathComponent("Alice.p12").path, "-passin", "pass:nss", "-nokeys", "-clcerts",
                                    "-legacy", "-out", peer.path("neomutt/alice-signer.pem")])
        let pki = try TestPKI()
        var unknown = CMSBuilder.Signer.rsa(try pki.person("Bob", algorithm: "rsa:2048"))
        unknown.signatureAlgorithm = "1.3.6.1.4.1.55555.1.1"
        let part = "Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned twice, checked once.\r\n"
        let signature = try CMSBuilder.signed(Array(part.utf8), signers: [
            .rsa(try CMSBuilder.Identity(key: peer.path("neomutt/alice.key"), certificate: peer.path("neomutt/alice-signer.pem"))), unknown,
        ], detached: true)
        let twice = "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: Two signers\r\nMIME-Version: 1.0\r\n"
            + "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b1\"\r\n\r\n"
            + "--b1\r\n\(part)\r\n--b1\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + Data(signature).base64EncodedString(options: [.lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]) + "\r\n--b1--\r\n"
        let direct = try agent.signet(["verify", "--in", try peer.file("neomutt/twice.eml", text: twice)])
        #expect(direct.status == 15 && direct.errors.contains("signed by Alice <alice@example.com>: good signature"), "\(direct.status) \(direct.errors)")
        let twiceDir = directory + "/twice"
        for folder in ["cur", "new", "tmp"] {
            try FileManager.default.createDirectory(atPath: twiceDir + "/" + folder, withIntermediateDirectories: true)
        }
        try twice.write(toFile: twiceDir + "/new/1.signet:2,", atomically: true, encoding: .utf8)
        let twiceReaderDirectory = directory + "/twice-reader"
        try FileManager.default.createDirectory(atPath: twiceReaderDirectory, withIntermediateDirectories: true)
        let twiceReader = try TerminalSession("neomutt -n -F '\(muttrc)' -f '\(twiceDir)'", socketDirectory: twiceReaderDirectory, environment: environment)
        try twiceReader.waitFor("Two signers")
        try twiceReader.send("Enter")
        let notGood = try twiceReader.waitFor("could NOT be verified", timeout: .seconds(30))
        #expect(!notGood.contains("successfully verified"), "\(notGood)")
        #expect(notGood.contains("Signed twice, checked once."), "\(notGood)")
        #expect(notGood.contains("good signature") && notGood.contains("cannot check the signature"), "\(notGood)")

        // Mail OpenSSL encrypted to Alice: neomutt runs smime_decrypt_command and shows the plaintext.
        let alice = peer.path("neomutt/alice.pem")
        try run(["cert", "export", id, "-o", alice])
        let secret = try peer.file("neomutt/secret.txt", text: "Content-Type: text/plain\r\n\r\nOnly Alice can read this.\r\n")
        let encrypted = peer.path("neomutt/encrypted.eml")
        try Run.checked("openssl", ["cms", "-encrypt", "-aes256", "-in", secret, "-out", encrypted, "-from", "Bob <bob@example.com>",
                                    "-to", "Alice <alice@example.com>", "-subject", "Encrypted for Alice", alice])
        let encryptedDir = directory + "/encrypted"
        for folder in ["cur", "new", "tmp"] {
            try FileManager.default.createDirectory(atPath: encryptedDir + "/" + folder, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: encrypted, toPath: encryptedDir + "/new/1.signet:2,")
        let decryptorDirectory = directory + "/decryptor"
        try FileManager.default.createDirectory(atPath: decryptorDirectory, withIntermediateDirectories: true)
        let decryptor = try TerminalSession("neomutt -n -F '\(muttrc)' -f '\(encryptedDir)'", socketDirectory: decryptorDirectory, environment: environment)
        try decryptor.waitFor("Encrypted for Alice")
        try decryptor.send("Enter")
        try decryptor.waitFor("S/MIME passphrase")  // as when signing: Signet needs none
        try decryptor.send("Enter")
        let opened = try decryptor.waitFor("Only Alice can read this.", timeout: .seconds(30))
        #expect(opened.contains("S/MIME encrypted"), "\(opened)")
    }

    @Test("Encrypting when you have no certificate of your own is refused, and nothing is written")
    func encryptWithoutOwnCertificate() throws {
        let empty = try AgentFixture()
        defer { _ = try? empty.signet(["agent", "stop"]) }
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("x.key"), "-out", peer.path("x.pem"),
                                    "-subj", "/CN=X", "-days", "2"])
        let result = try empty.signet(["encrypt", "--to", peer.path("x.pem"), "--in", peer.path("message.txt"), "-o", peer.path("x.eml")])
        #expect(result.status == 1 && result.errors.contains("no encryption certificate"), "\(result.errors)")
        #expect(!FileManager.default.fileExists(atPath: peer.path("x.eml")))
    }
}

enum Dates {
    static var now: String { ISO8601DateFormatter().string(from: Date()) }
}
