import Foundation
import SignetTestSupport
import Testing

/// libsignet-pkcs11.so loaded by three more independent consumers: OpenSSL 3.0 through libp11's engine
/// (libengine-pkcs11-openssl), GnuTLS's p11tool, and gpgsm through gpg-agent and gnupg-pkcs11-scd.
/// Whatever they sign is checked by a tool that never loads the module.
@Suite("PKCS#11 module: OpenSSL, GnuTLS, gpgsm", .serialized)
final class PeerTests {
    var fixture: ModuleFixture!
    static let keys = [("rsa", "pkcs11:token=Module%20Test;id=%01;type=private"),
                       ("ec", "pkcs11:token=Module%20Test;id=%02;type=private")]
    static let rsaKey = keys[0].1

    // Every test runs off Swift's cooperative pool (offPool): these block for seconds in subprocesses,
    // and on two cores that starved the async PC/SC tests beside them (events seen after 3.5 s).
    func prepare() throws { fixture = try ModuleFixture() }

    /// libp11's engine loads `PKCS11_MODULE_PATH`; without it, it loads p11-kit's proxy, which would reach
    /// the SoftHSM2 token directly and not through the module.
    var engine: [String: String] { ["PKCS11_MODULE_PATH": fixture.module] }

    func openssl(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 60) throws -> Run.Result {
        try fixture.run("openssl", arguments, stdin: stdin, timeout: timeout, environment: engine)
    }

    // MARK: OpenSSL through libengine-pkcs11-openssl

    @Test("openssl cms -sign with the engine's RSA and P-256 keys; openssl cms -verify, without the engine, accepts both")
    func engineSign() async throws { try await offPool { try self.prepare(); try self.engineSignBody() } }
    func engineSignBody() throws {
        for (name, key) in Self.keys {
            let sign = try openssl(["cms", "-sign", "-engine", "pkcs11", "-keyform", "engine", "-inkey", key, "-signer", "\(name).pem",
                                    "-nodetach", "-in", "message.txt", "-outform", "DER", "-out", "engine-\(name).p7m"])
            #expect(sign.status == 0, "\(name): \(sign.errors)")
            let verify = try fixture.run("openssl", ["cms", "-verify", "-inform", "DER", "-in", "engine-\(name).p7m", "-CAfile", "ca.pem",
                                                     "-purpose", "smimesign"], timeout: 30)
            #expect(verify.status == 0, "\(name): \(verify.errors)")
            #expect(verify.output.contains("Hello from the PKCS#11 module test."), "\(name): \(verify.output)")
        }
    }

    @Test("openssl cms -decrypt with the engine's RSA key opens a message openssl cms -encrypt made to rsa.pem")
    func engineDecrypt() async throws { try await offPool { try self.prepare(); try self.engineDecryptBody() } }
    func engineDecryptBody() throws {
        let encrypt = try fixture.run("openssl", ["cms", "-encrypt", "-aes256", "-in", "message.txt", "-outform", "DER",
                                                  "-out", "to-rsa.p7m", "rsa.pem"], timeout: 30)
        #expect(encrypt.status == 0, "\(encrypt.errors)")
        let decrypt = try openssl(["cms", "-decrypt", "-engine", "pkcs11", "-keyform", "engine", "-inkey", Self.rsaKey,
                                   "-recip", "rsa.pem", "-inform", "DER", "-in", "to-rsa.p7m"])
        #expect(decrypt.status == 0, "\(decrypt.errors)")
        #expect(decrypt.output == "Hello from the PKCS#11 module test.\r\n", "\(decrypt.output)")
    }

    @Test("TLS client authentication: s_client signs with the engine's keys (TLS 1.3 RSA-PSS and ECDSA, TLS 1.2 RSA), s_server verifies the certificate")
    func tlsClientAuthentication() async throws { try await offPool { try self.prepare(); try self.tlsClientAuthenticationBody() } }
    func tlsClientAuthenticationBody() throws {
        let server = try serverCertificate()
        for (name, key, protocolOptions) in [("rsa", Self.keys[0].1, ["-tls1_3"]), ("ec", Self.keys[1].1, ["-tls1_3"]),
                                             ("rsa", Self.keys[0].1, ["-tls1_2", "-sigalgs", "RSA+SHA256"])] {
            let what = "\(name) \(protocolOptions.joined(separator: " "))"
            let log = fixture.path("s_server-\(name)\(protocolOptions[0]).log")
            let pid = try AgentFixture.spawn("/usr/bin/openssl", ["s_server", "-Verify", "1", "-verify_return_error",
                                                                  "-CAfile", fixture.path("ca.pem"), "-cert", server.cert, "-key", server.key,
                                                                  "-accept", "127.0.0.1:0", "-naccept", "1", "-www"] + protocolOptions,
                                             environment: fixture.environment, log: log)
            defer { stop(pid) }
            let port = try #require(waitForPort(in: log), "s_server did not start: \(read(log))")
            // -www answers a GET with a page that says whether, and which, client certificate it received.
            let client = try openssl(["s_client", "-engine", "pkcs11", "-keyform", "engine", "-key", key, "-cert", "\(name).pem",
                                      "-CAfile", "ca.pem", "-verify_return_error", "-connect", "127.0.0.1:\(port)", "-ign_eof"]
                                     + protocolOptions, stdin: "GET / HTTP/1.0\r\n\r\n", timeout: 30)
            #expect(client.status == 0, "\(what): \(client.errors)")
            #expect(client.output.contains("Protocol  : TLSv1.\(protocolOptions[0] == "-tls1_3" ? "3" : "2")"), "\(what)")
            #expect(client.output.contains("Client certificate"), "\(what): \(client.output)")
            #expect(client.output.contains("Subject: O=Example Org, CN=Alice \(name)"), "\(what): \(client.output)")
            #expect(exited(pid), "\(what): s_server did not finish after its one connection")
            let serverLog = read(log)
            #expect(serverLog.contains("depth=0 O = Example Org, CN = Alice \(name)\nverify return:1"), "\(what): \(serverLog)")
            #expect(!serverLog.contains("error"), "\(what): \(serverLog)")
        }
    }

    /// A server certificate for 127.0.0.1 from the fixture's CA, with a software key.
    private func serverCertificate() throws -> (cert: String, key: String) {
        try fixture.write("server.ext", "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                          + "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        for arguments in [["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
                          ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
                           "-extfile", "server.ext", "-out", "server.pem"]] {
            let result = try fixture.run("openssl", arguments, timeout: 60)
            guard result.status == 0 else { throw TestFailure("openssl \(arguments[0]) failed: \(result.errors)") }
        }
        return (fixture.path("server.pem"), fixture.path("server.key"))
    }

    /// The port s_server reports on its `ACCEPT 127.0.0.1:PORT` line (it was given port 0).
    private func waitForPort(in log: String, seconds: Double = 20) -> Int? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let line = read(log).split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT 127.0.0.1:") }),
               let port = Int(line.dropFirst("ACCEPT 127.0.0.1:".count)) {
                return port
            }
            usleep(50_000)
        }
        return nil
    }

    // MARK: GnuTLS

    @Test("p11tool --provider lists both certificates without a login")
    func gnutlsListCertificates() async throws { try await offPool { try self.prepare(); try self.gnutlsListCertificatesBody() } }
    func gnutlsListCertificatesBody() throws {
        try fixture.lock()
        let result = try fixture.run("p11tool", ["--provider", fixture.module, "--list-all-certs"], stdin: "", timeout: 60)
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("token=Module%20Test;id=%01;object=Alice%20rsa;type=cert"), "\(result.output)")
        #expect(result.output.contains("token=Module%20Test;id=%02;object=Alice%20ec;type=cert"), "\(result.output)")
        #expect(result.output.contains("Type: X.509 Certificate (RSA-2048)"))
        #expect(result.output.contains("Type: X.509 Certificate (EC/ECDSA-SECP256R1)"))
    }

    @Test("p11tool --test-sign signs with the RSA key (PKCS#1 v1.5 and PSS) and the P-256 key, and checks each against the token's public key")
    func gnutlsTestSign() async throws { try await offPool { try self.prepare(); try self.gnutlsTestSignBody() } }
    func gnutlsTestSignBody() throws {
        // No --login, no code: the token is unlocked in the agent, and p11tool sees a protected authentication path.
        for (name, key, options) in [("rsa", Self.keys[0].1, [String]()), ("rsa-pss", Self.keys[0].1, ["--sign-params", "RSA-PSS"]),
                                     ("ec", Self.keys[1].1, [])] {
            let result = try fixture.run("p11tool", ["--provider", fixture.module] + options + ["--test-sign", key], stdin: "", timeout: 60)
            let output = result.output + result.errors
            #expect(result.status == 0, "\(name): \(output)")
            let algorithm = ["rsa": "RSA-SHA256", "rsa-pss": "RSA-PSS-SHA256", "ec": "ECDSA-SHA256"][name]!
            #expect(output.contains("Signing using \(algorithm)... ok"), "\(name): \(output)")
            #expect(output.contains("Verifying against private key parameters... ok"), "\(name): \(output)")
            #expect(output.contains("Verifying against public key in the token... ok"), "\(name): \(output)")
        }
    }

    // MARK: gpgsm through gnupg-pkcs11-scd

    @Test("gpgsm --learn-card finds the RSA key through gnupg-pkcs11-scd, signs with it in --batch without a prompt, and OpenSSL checks the signature")
    func gpgsmSign() async throws { try await offPool { try self.prepare(); try self.gpgsmSignBody() } }
    func gpgsmSignBody() throws {
        let home = fixture.path("gnupg")
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { _ = try? Run.command("gpgconf", ["--homedir", home, "--kill", "all"], environment: fixture.environment, timeout: 30) }
        try "providers signet\nprovider-signet-library \(fixture.module)\n"
            .write(toFile: home + "/gnupg-pkcs11-scd.conf", atomically: true, encoding: .utf8)
        // A pinentry that fails: gpg-agent must not need one while the agent holds the token unlocked.
        try "scdaemon-program /usr/bin/gnupg-pkcs11-scd\npinentry-program /bin/false\n"
            .write(toFile: home + "/gpg-agent.conf", atomically: true, encoding: .utf8)
        func gpgsm(_ arguments: [String], in home: String) throws -> Run.Result {
            try fixture.run("gpgsm", ["--batch", "--disable-crl-checks"] + arguments, stdin: "", timeout: 60,
                            environment: ["GNUPGHOME": home])
        }
        try trust(home: home, gpgsm: gpgsm)

        let learn = try gpgsm(["--learn-card"], in: home)
        #expect(learn.status == 0, "\(learn.errors)")
        let secret = try gpgsm(["--with-colons", "--list-secret-keys"], in: home)
        #expect(secret.output.contains("uid:::::::::CN=Alice rsa,O=Example Org::"), "\(secret.output)\(secret.errors)")
        let fingerprint = try #require(secret.output.split(separator: "\n").first { $0.hasPrefix("fpr:") }?
            .split(separator: ":", omittingEmptySubsequences: false).dropFirst(9).first.map(String.init), "\(secret.output)")

        let sign = try gpgsm(["--sign", "--local-user", "0x" + fingerprint, "--output", "gpgsm.p7s", "message.txt"], in: home)
        #expect(sign.status == 0, "\(sign.errors)")
        #expect(sign.errors.contains("signature created"), "\(sign.errors)")

        // gpgsm in a home that has never seen the card: only the CA and the certificate.
        let other = fixture.path("gnupg-verify")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { _ = try? Run.command("gpgconf", ["--homedir", other, "--kill", "all"], environment: fixture.environment, timeout: 30) }
        try trust(home: other, gpgsm: gpgsm)
        #expect(try gpgsm(["--import", "rsa.pem"], in: other).status == 0)
        let verify = try gpgsm(["--verify", "gpgsm.p7s"], in: other)
        #expect(verify.status == 0 && verify.errors.contains("Good signature from \"/CN=Alice rsa/O=Example Org\""), "\(verify.errors)")

        // OpenSSL. gpgsm 2.2.40 with gnupg-pkcs11-scd 0.10 writes an RSA signature whose first byte has the high bit set
        // as 257 bytes, 00 first (the module answered 256: gnupg-pkcs11-scd's log shows it), which OpenSSL 3 refuses as
        // "wrong signature length"; a software key in the same gpgsm gives 256. Half of all signatures, so the test says
        // which it got and then checks the signature value itself with OpenSSL.
        let parsed = try fixture.run("openssl", ["asn1parse", "-inform", "DER", "-in", "gpgsm.p7s"], timeout: 30)
        let line = try #require(parsed.output.split(separator: "\n").last { $0.contains("prim: OCTET STRING") && $0.contains("[HEX DUMP]:") })
        let signature = try #require(Self.bytes(hex: String(line.split(separator: ":").last!)), "\(line)")
        let cms = try fixture.run("openssl", ["cms", "-verify", "-inform", "DER", "-in", "gpgsm.p7s", "-CAfile", "ca.pem",
                                              "-purpose", "smimesign"], timeout: 30)
        if signature.count == 257 && signature.first == 0 {
            withKnownIssue("gpgsm 2.2.40 via gnupg-pkcs11-scd: an RSA signature with its high bit set gets a leading zero byte") {
                #expect(cms.status == 0, "\(cms.errors)")
            }
        } else {
            #expect(signature.count == 256, "\(line)")
            #expect(cms.status == 0, "\(cms.errors)")
            #expect(cms.output.contains("Hello from the PKCS#11 module test."), "\(cms.output)")
        }
        // Either way: the signature value, less that byte, opens with rsa.pem's public key to a SHA-256 DigestInfo.
        try Data(signature.suffix(256)).write(to: URL(fileURLWithPath: fixture.path("gpgsm-signature.bin")))
        #expect(try fixture.run("openssl", ["x509", "-in", "rsa.pem", "-pubkey", "-noout", "-out", "rsa.pub"], timeout: 30).status == 0)
        let recovered = try fixture.run("openssl", ["pkeyutl", "-verifyrecover", "-pubin", "-inkey", "rsa.pub", "-in", "gpgsm-signature.bin"],
                                        timeout: 30)
        #expect(recovered.status == 0, "\(recovered.errors)")
        #expect(recovered.stdout.count == 51 && Self.hex(recovered.stdout.prefix(19)) == "3031300d060960864801650304020105000420",
                "\(Self.hex(recovered.stdout))")
    }

    /// Imports ca.pem into `home` and marks it trusted for S/MIME in trustlist.txt.
    private func trust(home: String, gpgsm: ([String], String) throws -> Run.Result) throws {
        let imported = try gpgsm(["--import", "ca.pem"], home)
        guard imported.status == 0 else { throw TestFailure("gpgsm --import ca.pem failed: \(imported.errors)") }
        let listed = try gpgsm(["--with-colons", "--fingerprint", "Module Test Root"], home)
        guard let line = listed.output.split(separator: "\n").first(where: { $0.hasPrefix("fpr:") }) else {
            throw TestFailure("no fingerprint for the CA: \(listed.output)\(listed.errors)")
        }
        let fingerprint = line.split(separator: ":", omittingEmptySubsequences: false)[9]
        try "\(fingerprint) S\n".write(toFile: home + "/trustlist.txt", atomically: true, encoding: .utf8)
    }

    // MARK: Helpers

    private func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// Waits for a child to exit by itself; false if it had to be killed.
    private func exited(_ pid: pid_t, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var status: Int32 = 0
        while Date() < deadline {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid || (result < 0 && errno == ECHILD) { return true }
            usleep(50_000)
        }
        return false
    }

    /// Kills a child that is still running and reaps it.
    private func stop(_ pid: pid_t) {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == 0 {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 { bytes.map { String(format: "%02x", $0) }.joined() }
}
