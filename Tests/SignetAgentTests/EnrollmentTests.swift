import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL
import SignetPKCS11
import SignetTestSupport
import Testing

/// The administrator's journey through the real CLI and agent on SoftHSM2,
/// with the `openssl` tool as the CA and as the independent checker.
@Suite("Enrollment: keys, requests, issued certificates, PKCS#12, trust", .serialized)
final class EnrollmentTests {
    let agent: AgentFixture
    let peer: OpenSSLPeer
    static let code = "enrol-1234"
    static let smime = TestPaths.testData.appendingPathComponent("thunderbird-smime")

    init() throws {
        agent = try AgentFixture()
        peer = try OpenSSLPeer()
    }

    deinit { _ = try? agent.signet(["agent", "stop"]) }

    /// A fresh token, unlocked.
    func unlockedToken(_ label: String) throws -> String {
        let uri = try agent.makeToken(label, code: Self.code)
        let unlocked = try agent.signet(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        #expect(unlocked.status == 0, "\(unlocked.errors)")
        return uri
    }

    /// `signet …`, expected to succeed.
    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil) throws -> Run.Result {
        let result = try agent.signet(arguments, stdin: stdin)
        guard result.status == 0 else { throw TestFailure("signet \(arguments.joined(separator: " ")) exited \(result.status): \(result.errors)") }
        return result
    }

    /// A test CA made by openssl: root key and certificate.
    func makeCA() throws -> (key: String, certificate: String) {
        let key = peer.path("ca.key"), certificate = peer.path("ca.pem")
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
                                    "-subj", "/C=CA/O=Enrolment Test CA/CN=Root", "-days", "30"])
        return (key, certificate)
    }

    /// The CA issues a mail certificate for `csr`.
    func issue(_ csr: String, ca: (key: String, certificate: String), name: String) throws -> String {
        let extensions = try peer.file("ext-\(name).cnf", text: """
            keyUsage=critical,digitalSignature,keyEncipherment
            extendedKeyUsage=emailProtection
            subjectAltName=email:person@example.org
            """)
        let out = peer.path("\(name).pem")
        try Run.checked("openssl", ["x509", "-req", "-in", csr, "-CA", ca.certificate, "-CAkey", ca.key, "-CAcreateserial", "-days", "10",
                                    "-extfile", extensions, "-out", out])
        return out
    }

    func objects() throws -> [[String: Any]] {
        let listed = try run(["keys", "--json"])
        return try #require(try JSONSerialization.jsonObject(with: listed.stdout) as? [[String: Any]])
    }

    func certificates() throws -> [[String: Any]] {
        let listed = try run(["cert", "list", "--json"])
        return try #require(try JSONSerialization.jsonObject(with: listed.stdout) as? [[String: Any]])
    }

    @Test("Generate on the token, request, issue with OpenSSL, install as PEM, DER, PKCS#7 and PKCS#7-labelled-CERTIFICATE; the token's signature verifies against the certificate",
          arguments: ["rsa2048", "p256"])
    func journey(_ type: String) throws {
        _ = try unlockedToken("Journey-\(type)")
        let generated = try run(["key", "generate", "--type", type, "--label", "mail", "--id", "a1b2"])
        #expect(generated.output.contains("id a1b2"))

        let subject = #"C=CA,ST=ON,O=Smith\, Jones and Co,CN=8934282"#
        let csr = peer.path("request.csr")
        try run(["csr", "--key", "a1b2", "--subject", subject, "--email", "person@example.org", "--upn", "person@corp.example",
                 "--purpose", "mail,login", "-o", csr])
        let verified = try peer.run(["req", "-in", csr, "-verify", "-noout"])
        #expect(verified.status == 0 && (verified.output + verified.errors).contains("verify OK"), "\(verified.errors)")
        // The subject round-trips through `openssl req -subject`, in the order written.
        let shown = try Run.checked("openssl", ["req", "-in", csr, "-noout", "-subject", "-nameopt", "sep_comma_plus,esc_2253,dn_rev,sname"]).output
        #expect(shown.trimmingCharacters(in: .whitespacesAndNewlines) == "subject=CN=8934282,O=Smith\\, Jones and Co,ST=ON,C=CA")
        let text = try Run.checked("openssl", ["req", "-in", csr, "-noout", "-text"]).output
        #expect(text.contains("email:person@example.org") && text.contains("UPN::person@corp.example"))
        #expect(text.contains(type == "p256" ? "ecdsa-with-SHA256" : "sha256WithRSAEncryption"))
        #expect(text.contains("E-mail Protection, TLS Web Client Authentication"), "\(text)")
        #expect(text.contains(type == "p256" ? "Digital Signature, Key Agreement" : "Digital Signature, Key Encipherment"), "\(text)")

        let ca = try makeCA()
        let issued = try issue(csr, ca: ca, name: "issued")
        try Run.checked("openssl", ["x509", "-in", issued, "-outform", "DER", "-out", peer.path("issued.der")])
        try Run.checked("openssl", ["crl2pkcs7", "-nocrl", "-certfile", issued, "-certfile", ca.certificate, "-outform", "DER", "-out", peer.path("issued.p7b")])
        let mislabelled = PEM.encode(try peer.read("issued.p7b"), label: "CERTIFICATE")
        let forms = [issued, peer.path("issued.der"), peer.path("issued.p7b"), try peer.file("mislabelled.pem", text: mislabelled)]
        for (index, form) in forms.enumerated() {
            let imported = try run(["cert", "import", form, "--trust-roots"])
            #expect(imported.output.contains("Installed C=CA,ST=ON,O=Smith\\, Jones and Co,CN=8934282"), "\(form): \(imported.output)")
            // Importing the same file again changes nothing.
            let again = try run(["cert", "import", form])
            #expect(again.output.contains("Already installed"))
            let listed = try certificates()
            #expect(listed.count == 1)
            #expect(listed.first?["keyPresent"] as? Bool == true)
            if index < forms.count - 1 {
                let id = try #require(listed.first?["id"] as? String)
                try run(["cert", "delete", id, "--yes"])
                #expect(try certificates().isEmpty)
            }
        }
        // The root from the PKCS#7 bundle went to the trust store.
        #expect(try run(["trust", "list"]).output.contains("root  C=CA,O=Enrolment Test CA,CN=Root"))

        // A signature made on the token verifies against the installed certificate's key.
        let installed = try certificates()
        let keyURI = try #require(installed.first?["keyURI"] as? String)
        let exported = peer.path("exported.pem")
        try run(["cert", "export", try #require(installed.first?["id"] as? String), "-o", exported])
        let publicKey = try Run.checked("openssl", ["x509", "-in", exported, "-noout", "-pubkey"]).output
        let message = Array("enrolment check".utf8)
        // SoftHSM2 has no CKM_ECDSA_SHA256: the digest is made here and signed with CKM_ECDSA.
        let (mechanism, data) = type == "p256"
            ? (WireMechanism(type: 0x1041 /* CKM_ECDSA */), try sha256(message))
            : (WireMechanism(type: 0x40 /* CKM_SHA256_RSA_PKCS */), message)
        guard case .signature(var signature) = try agent.client().call(.sign(key: keyURI, mechanism: mechanism, data: data)) else {
            throw TestFailure("no signature")
        }
        if type == "p256" { signature = ECDSASignature.der(fromRaw: signature) }
        #expect(try peer.verify(publicKeyPEM: publicKey, message: message, signature: signature))

        // The audit log records the writes, and never the access code.
        let actions = Set(agent.auditEntries.compactMap { $0["action"] as? String })
        #expect(actions.isSuperset(of: ["key-generated", "certificate-stored", "object-deleted", "sign"]))
        #expect(!agent.auditLog.contains(Self.code))
    }

    @Test("`csr --purpose login --upn` asks for clientAuth and the msUPN otherName (UTF8String); a CA copying the extensions issues a certificate `cert list` shows for client login only")
    func loginRequest() throws {
        _ = try unlockedToken("Login")
        try run(["key", "generate", "--type", "p256", "--label", "owa", "--id", "0c"])
        let csr = peer.path("login.csr")
        try run(["csr", "--key", "0c", "--subject", "CN=Alice Example", "--purpose", "login", "--upn", "alice@corp.example", "-o", csr])
        let text = try Run.checked("openssl", ["req", "-in", csr, "-noout", "-text"]).output
        #expect(text.contains("X509v3 Extended Key Usage: \n                    TLS Web Client Authentication\n"), "\(text)")
        #expect(text.contains("X509v3 Key Usage: critical\n                    Digital Signature\n"), "\(text)")
        #expect(text.contains("othername: UPN::alice@corp.example"), "\(text)")
        // The UPN is an otherName of type 1.3.6.1.4.1.311.20.2.3 holding a UTF8String, as Active Directory reads it.
        try Run.checked("openssl", ["req", "-in", csr, "-outform", "DER", "-out", peer.path("login.der")])
        let parsed = try Run.checked("openssl", ["asn1parse", "-inform", "DER", "-in", peer.path("login.der"), "-strparse", try sanOffset(peer.path("login.der"))]).output
        #expect(parsed.contains("Microsoft User Principal Name") || parsed.contains("1.3.6.1.4.1.311.20.2.3"), "\(parsed)")
        #expect(parsed.contains("UTF8STRING        :alice@corp.example"), "\(parsed)")

        let ca = try makeCA()
        try Run.checked("openssl", ["x509", "-req", "-in", csr, "-CA", ca.certificate, "-CAkey", ca.key, "-CAcreateserial", "-days", "5",
                                    "-copy_extensions", "copy", "-out", peer.path("login.pem")])
        try run(["cert", "import", peer.path("login.pem"), "--trust-roots"])
        let listed = try certificates()
        // Not for S/MIME signing: that needs emailProtection.
        #expect(listed.first?["purposes"] as? [String] == ["client login"], "\(listed)")
        #expect(try run(["cert", "list"]).output.contains("  for:      client login\n"))
    }

    @Test("`csr --purpose mail,login`, issued by the README's CA step (copying the extensions), gives one certificate `cert list` shows for signing, encryption and client login")
    func mailAndLoginCertificate() throws {
        _ = try unlockedToken("Both")
        try run(["key", "generate", "--type", "rsa2048", "--label", "both", "--id", "0d"])
        let csr = peer.path("both.csr")
        try run(["csr", "--key", "0d", "--subject", "CN=Alice Example", "--email", "alice@example.org", "--purpose", "mail,login",
                 "--upn", "alice@corp.example", "-o", csr])
        let ca = try makeCA()
        try Run.checked("openssl", ["x509", "-req", "-in", csr, "-CA", ca.certificate, "-CAkey", ca.key, "-CAcreateserial", "-days", "5",
                                    "-copy_extensions", "copy", "-out", peer.path("both.pem")])
        // OpenSSL's own purpose checks agree: the certificate is good for S/MIME and for a TLS client.
        for purpose in ["smimesign", "smimeencrypt", "sslclient"] {
            let checked = try peer.run(["verify", "-CAfile", ca.certificate, "-purpose", purpose, peer.path("both.pem")])
            #expect(checked.status == 0, "\(purpose): \(checked.output) \(checked.errors)")
        }
        try run(["cert", "import", peer.path("both.pem"), "--trust-roots"])
        #expect(try certificates().first?["purposes"] as? [String] == ["signing", "encryption", "client login"])
    }

    @Test("`csr` refuses an unknown purpose, and a UPN without login")
    func purposeRefusals() throws {
        _ = try unlockedToken("Refusals")
        try run(["key", "generate", "--type", "p256", "--label", "k", "--id", "0e"])
        let unknown = try agent.signet(["csr", "--key", "0e", "--subject", "CN=X", "--purpose", "mail,vpn"])
        #expect(unknown.status != 0 && unknown.errors.contains("--purpose must be mail, login or mail,login"), "\(unknown.errors)")
        let upn = try agent.signet(["csr", "--key", "0e", "--subject", "CN=X", "--upn", "x@corp.example"])
        #expect(upn.status != 0 && upn.errors.contains("add --purpose login"), "\(upn.errors)")
    }

    /// The offset of the subjectAltName extension's value in a DER request, for `openssl asn1parse -strparse`.
    func sanOffset(_ der: String) throws -> String {
        let lines = try Run.checked("openssl", ["asn1parse", "-inform", "DER", "-in", der]).output.split(separator: "\n")
        guard let name = lines.firstIndex(where: { $0.contains(":X509v3 Subject Alternative Name") }), name + 1 < lines.count,
              let offset = lines[name + 1].split(separator: ":").first?.trimmingCharacters(in: .whitespaces) else {
            throw TestFailure("no subjectAltName in the request")
        }
        return offset
    }

    @Test("With a login and a mail certificate on one token, the mail one is the default for signing and encryption; configuration can pin another")
    func defaults() throws {
        _ = try unlockedToken("Two")
        let ca = try makeCA()
        var ids: [String: String] = [:]
        for (name, eku) in [("login", "clientAuth,1.3.6.1.4.1.311.20.2.2"), ("mail", "emailProtection")] {
            try run(["key", "generate", "--type", "p256", "--label", name])
            try run(["csr", "--key", name, "--subject", "CN=\(name)", "-o", peer.path("\(name).csr")])
            let extensions = try peer.file("\(name).cnf", text: "keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=\(eku)\n")
            try Run.checked("openssl", ["x509", "-req", "-in", peer.path("\(name).csr"), "-CA", ca.certificate, "-CAkey", ca.key, "-CAcreateserial",
                                        "-days", "5", "-extfile", extensions, "-out", peer.path("\(name).pem")])
            try run(["cert", "import", peer.path("\(name).pem")])
        }
        func defaults() throws -> [String: [String]] {
            var found: [String: [String]] = [:]
            for entry in try certificates() {
                let subject = try #require(entry["subject"] as? String)
                found[subject] = entry["defaults"] as? [String]
                ids[subject] = entry["id"] as? String
            }
            return found
        }
        #expect(try defaults() == ["CN=login": [], "CN=mail": ["signing", "encryption"]])
        let login = try #require(ids["CN=login"])
        let config = agent.paths.config + "/config"
        try (try String(contentsOfFile: config, encoding: .utf8) + "signing-certificate = \(login)\n").write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try defaults() == ["CN=login": ["signing"], "CN=mail": ["encryption"]])
        #expect(try run(["cert", "list"]).output.contains("CN=mail  [default for encryption]"))
    }

    @Test("Generated keys are sensitive and never extractable: pkcs11-tool reads the flags; the token refuses the private values")
    func sensitive() throws {
        let uri = try unlockedToken("Sensitive")
        let serial = try #require(uri.split(separator: ";").first { $0.hasPrefix("serial=") }).dropFirst(7)
        try run(["key", "generate", "--type", "rsa2048", "--label", "s", "--id", "5e"])
        try run(["key", "generate", "--type", "p384", "--label", "e", "--id", "5f"])
        let module = try #require(SoftwareTokens.installedModulePath())
        let env = agent.environment
        let listed = try Run.command("pkcs11-tool", ["--module", module, "--token-label", "Sensitive", "--login", "--pin", Self.code,
                                                    "--list-objects", "--type", "privkey"], environment: env)
        let blocks = listed.output.components(separatedBy: "Private Key Object").dropFirst()
        #expect(blocks.count == 2, "\(listed.output)\(listed.errors)")
        for block in blocks {
            #expect(block.contains("sensitive") && block.contains("never extractable"), "\(block)")
        }
        // Asked directly through PKCS#11, the token answers the flags and refuses CKA_PRIVATE_EXPONENT, CKA_PRIME_1 and CKA_VALUE.
        let helper = TestPaths.binaries.appendingPathComponent("signet-test-helper").path
        for id in ["5e", "5f"] {
            let read = try Run.command(helper, ["read-key", "--module", module, "--serial", String(serial), "--id", id],
                                       stdin: Data("\(Self.code)\n".utf8), environment: env)
            #expect(read.status == 0, "\(read.errors)")
            let lines = Set(read.output.split(separator: "\n").map(String.init))
            #expect(lines == ["sensitive=01", "extractable=00", "private-exponent=refused", "prime1=refused", "value=refused"], "\(id): \(read.output)")
        }
        // RSA below 2048 bits is refused by the agent itself.
        let client = try agent.client()
        #expect(throws: AgentClientError.self) {
            try client.call(.generateKeyPair(token: nil, keyType: .rsa, bits: 1024, curve: "", id: [1], label: "weak"))
        }
    }

    @Test("A certificate whose key is on no token is refused as 'private key missing' and the token is unchanged")
    func privateKeyMissing() throws {
        _ = try unlockedToken("Missing")
        try run(["key", "generate", "--type", "p256", "--label", "mine", "--id", "01"])
        let ca = try makeCA()
        try Run.checked("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("other.key"), "-out", peer.path("other.csr"),
                                    "-subj", "/CN=Somebody Else"])
        let foreign = try issue(peer.path("other.csr"), ca: ca, name: "foreign")
        let before = try objects()
        let trustBefore = try run(["trust", "list", "--json"]).output
        let refused = try agent.signet(["cert", "import", foreign, "--trust-roots"])
        #expect(refused.status == 1)
        #expect(refused.errors.contains("the private key is missing. Nothing was written."), "\(refused.errors)")
        #expect(NSDictionary(dictionary: ["o": before]) == NSDictionary(dictionary: ["o": try objects()]))
        #expect(try run(["trust", "list", "--json"]).output == trustBefore)
    }

    @Test("A certificate stored with the wrong CKA_ID is re-linked to its key by `cert repair`")
    func repair() throws {
        let token = try unlockedToken("Repair")
        try run(["key", "generate", "--type", "rsa2048", "--label", "k", "--id", "0a0b"])
        try run(["csr", "--key", "0a0b", "--subject", "CN=Repair", "-o", peer.path("r.csr")])
        let issued = try issue(peer.path("r.csr"), ca: try makeCA(), name: "r")
        let der = try #require(try CertificateFile.read(Array(try Data(contentsOf: URL(fileURLWithPath: issued)))).certificates.first).der
        // What a broken enrolment tool leaves behind: the certificate under another id.
        _ = try agent.client().call(.storeCertificate(token: token, der: der, id: [0xEE], label: "Repair"))
        #expect(try certificates().first?["uri"] as? String ?? "" != "")
        #expect(try run(["key", "list"]).output.contains("certificate: CN=Repair"))  // matched by public key even so
        let repaired = try run(["cert", "repair"])
        #expect(repaired.output.contains("certificate id ee → 0a0b"), "\(repaired.output)")
        let after = try objects().filter { $0["kind"] as? String == "certificate" }
        #expect(after.count == 1 && after.first?["id"] as? String == "0a0b")
        #expect(try run(["cert", "repair"]).output.contains("nothing changed"))
    }

    @Test("Bob.p12 (Thunderbird, AES) imports and decrypts the message Alice sent him, as OpenSSL does with the original key")
    func pkcs12Modern() throws {
        _ = try unlockedToken("Bob")
        let p12 = Self.smime.appendingPathComponent("smime/Bob.p12").path
        let imported = try run(["import", p12, "--password-fd", "0", "--trust-roots"], stdin: "nss\n")
        #expect(imported.output.contains("Imported RSA-2048 key and certificate"))
        #expect(imported.errors.contains("PBES2 AES-256-CBC"))
        #expect(agent.auditEntries.contains { $0["action"] as? String == "key-imported" })
        #expect(!agent.auditLog.contains("nss") && !agent.auditLog.contains(Self.code))
        try expectDecrypts(p12: p12, message: Self.smime.appendingPathComponent("smime/alice.env.eml").path, email: "bob@example.com")
        // Again: nothing new is written.
        let before = try objects()
        let again = try run(["import", p12, "--password-fd", "0"], stdin: "nss\n")
        #expect(again.output.contains("already on the token"))
        #expect(try objects().count == before.count)
    }

    @Test("Fran.p12 and Fran-ec.p12 (OpenSSL, legacy 3DES) import; OAEP and ECDH messages to Fran decrypt as OpenSSL decrypts them")
    func pkcs12Legacy() throws {
        _ = try unlockedToken("Fran")
        let rsa = Self.smime.appendingPathComponent("smime-interop/Fran.p12").path
        let ec = Self.smime.appendingPathComponent("smime-interop/Fran-ec.p12").path
        let imported = try run(["import", rsa, "--password-fd", "0"], stdin: "nss\n")
        #expect(imported.errors.contains("TripleDES") && imported.errors.contains("legacy"))
        try run(["import", ec, "--password-fd", "0"], stdin: "nss\n")
        try expectDecrypts(p12: rsa, message: Self.smime.appendingPathComponent("smime-interop/fran-oaep_ossl.env").path, email: "fran@example.com")
        try expectDecrypts(p12: ec, message: Self.smime.appendingPathComponent("smime-interop/fran-ec_ossl-aes128-sha256.env").path,
                           email: "fran-ec@example.com")
    }

    @Test("Importing a .p12 asks to unlock a locked token; a wrong password and a failed certificate write leave the token unchanged")
    func pkcs12Failures() throws {
        let failing = try AgentFixture(countingCodes: true, extraEnvironment: ["SIGNET_WRAPPER_REFUSE_CERTIFICATES": "1"])
        defer { _ = try? failing.signet(["agent", "stop"]) }
        _ = try failing.makeToken("Refusing", code: Self.code)
        let p12 = Self.smime.appendingPathComponent("smime/Bob.p12").path
        let wrong = try failing.signet(["import", p12, "--password-fd", "0"], stdin: "not-the-password\n")
        #expect(wrong.status == 2)
        #expect(wrong.errors.contains("password for this file is wrong; nothing was imported"))
        // The token is locked: import asks for the code (on --code-fd), writes the key, then the token refuses the certificate.
        let refused = try failing.signet(["import", p12, "--password-fd", "0", "--code-fd", "0"], stdin: "nss\n\(Self.code)\n")
        #expect(refused.status == 1)
        #expect(refused.errors.contains("Could not store the certificate") && refused.errors.contains("Nothing was left on the token"), "\(refused.errors)")
        let listed = try failing.signet(["keys", "--json"])
        let objects = try #require(try JSONSerialization.jsonObject(with: listed.stdout) as? [[String: Any]])
        #expect(objects.isEmpty, "orphans left: \(objects)")
        #expect(try String(contentsOfFile: failing.wrapperLog, encoding: .utf8).contains("C_CreateObject certificate refused"))
    }

    func sha256(_ bytes: [UInt8]) throws -> [UInt8] {
        Array(try Run.checked("openssl", ["dgst", "-sha256", "-binary"], stdin: Data(bytes)).stdout)
    }

    /// Decrypts `message` with the imported key through the agent and with the original key in OpenSSL; both must agree.
    func expectDecrypts(p12: String, message: String, email: String) throws {
        let client = try agent.client()
        guard case .objectPage(let page) = try client.call(.listObjectPage(token: nil, start: 0, certificateValues: false)), case let objects = page.objects else { throw TestFailure("no objects") }
        var chosen: (Certificate, ObjectEntry)?
        for entry in objects where entry.kind == .certificate {
            guard case .certificate(let der) = try client.call(.getCertificate(object: entry.uri)) else { continue }
            let certificate = try Certificate(der: der)
            if certificate.emails.contains(email),
               let key = objects.first(where: { $0.kind == .privateKey && $0.publicKeyInfo == certificate.subjectPublicKeyInfo }) {
                chosen = (certificate, key)
            }
        }
        let (certificate, key) = try #require(chosen, "no certificate with a key for \(email)")
        let agentKey = try AgentKey(client: client, uri: key.uri, subjectPublicKeyInfo: key.publicKeyInfo)
        let plaintext = try EnvelopedMessage(Array(try Data(contentsOf: URL(fileURLWithPath: message)))).decrypt(certificate: certificate, key: agentKey)

        try Run.checked("openssl", ["pkcs12", "-in", p12, "-passin", "pass:nss", "-nodes", "-nocerts", "-legacy", "-out", peer.path("oracle.key")])
        try Run.checked("openssl", ["pkcs12", "-in", p12, "-passin", "pass:nss", "-clcerts", "-nokeys", "-legacy", "-out", peer.path("oracle.crt")])
        let oracle = try Run.checked("openssl", ["cms", "-decrypt", "-in", message, "-inkey", peer.path("oracle.key"), "-recip", peer.path("oracle.crt"),
                                                 "-binary"])
        #expect(!plaintext.isEmpty)
        #expect(plaintext == Array(oracle.stdout), "the agent's plaintext differs from OpenSSL's")
    }
}
