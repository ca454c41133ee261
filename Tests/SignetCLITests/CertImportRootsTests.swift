import Foundation
import SignetTestSupport
import Testing

/// `signet cert import` offering the file's root to the programs, as `signet setup --trust-roots` adds it: a real
/// agent and software token, a certificate issued by an openssl CA, `signet setup` registering in a real
/// `~/.pki/nssdb` (the module a copy of SoftHSM2, which modutil loads), certutil and gpgsm checking the result.
@Suite("signet cert import: roots for the programs")
final class CertImportRootsTests {
    let agent: AgentFixture
    let work: URL
    var nssdb: String { agent.home.path + "/.pki/nssdb" }
    var trustList: String { work.path + "/gnupg/trustlist.txt" }

    init() throws {
        work = try TestPaths.temporaryDirectory("signet-import-roots")
        let module = work.path + "/libsignet-pkcs11.so"
        let softhsm = URL(fileURLWithPath: "/usr/lib/softhsm/libsofthsm2.so").resolvingSymlinksInPath().path
        try FileManager.default.copyItem(atPath: softhsm, toPath: module)
        try FileManager.default.createDirectory(atPath: work.path + "/gnupg", withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        agent = try AgentFixture(extraEnvironment: ["SIGNET_FRONTEND_MODULE": module, "GNUPGHOME": work.path + "/gnupg"])
        try agent.start()
    }

    deinit {
        _ = try? Run.command("gpgconf", ["--kill", "all"], environment: agent.environment, timeout: 30)
        agent.stop()
        try? FileManager.default.removeItem(at: work)
    }

    /// A token with a key, a root CA made by openssl, and the key's certificate from it; returns the file holding
    /// the certificate and the root (as a CA sends them) and the root's SHA-1 fingerprint.
    func issued() throws -> (chain: String, sha1: String) {
        try agent.makeToken("Roots")
        #expect(try agent.signet(["unlock", "--code-fd", "0"], stdin: "123456\n").status == 0)
        #expect(try agent.signet(["key", "generate", "--type", "p256", "--label", "mail", "--id", "0a"]).status == 0)
        let csr = work.path + "/mail.csr", root = work.path + "/root.pem", leaf = work.path + "/mail.pem"
        #expect(try agent.signet(["csr", "--key", "0a", "--subject", "CN=Alice", "--email", "alice@example.org", "-o", csr]).status == 0)
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", work.path + "/root.key", "-out", root,
                                    "-subj", "/O=Organisation/CN=Organisation Root", "-days", "5"])
        try Run.checked("openssl", ["x509", "-req", "-in", csr, "-CA", root, "-CAkey", work.path + "/root.key", "-CAcreateserial",
                                    "-days", "5", "-copy_extensions", "copy", "-out", leaf])
        let chain = work.path + "/chain.pem"
        try (String(contentsOfFile: leaf, encoding: .utf8) + String(contentsOfFile: root, encoding: .utf8))
            .write(toFile: chain, atomically: true, encoding: .utf8)
        let fingerprint = try Run.checked("openssl", ["x509", "-in", root, "-noout", "-fingerprint", "-sha1"]).output
        return (chain, String(fingerprint.split(separator: "=").last ?? "").filter(\.isHexDigit).uppercased())
    }

    /// The trust of NSS entries `signet setup --trust-roots` names ("Signet root …") in ~/.pki/nssdb.
    func signetRootsInNSS() throws -> [String] {
        let listing = try Run.checked("certutil", ["-L", "-d", "sql:" + nssdb], environment: agent.environment).output
        return listing.split(separator: "\n").filter { $0.hasPrefix("Signet root ") }.map { String($0.split(separator: " ").last ?? "") }
    }

    func inTrustList(_ sha1: String) -> Bool {
        let colons = stride(from: 0, to: sha1.count, by: 2).map { String(Array(sha1)[$0..<$0 + 2]) }.joined(separator: ":")
        return ((try? String(contentsOfFile: trustList, encoding: .utf8)) ?? "").contains(colons + " S")
    }

    /// `signet ARGUMENTS` on a terminal (util-linux `script` gives it a pseudo-terminal), `answers` typed into it.
    func onTerminal(_ arguments: [String], answers: String) throws -> Run.Result {
        let command = ([AgentFixture.signet] + arguments).map { "'\($0)'" }.joined(separator: " ")
        return try Run.command("script", ["-qec", command, "/dev/null"], stdin: Data(answers.utf8), environment: agent.environment, timeout: 120)
    }

    @Test("No terminal: the root is trusted by Signet only, with a note naming `signet setup --trust-roots`; on a terminal, No adds nothing and Yes adds it to the NSS database and the trustlist; --undo takes it out; --trust-roots-in-programs adds it without asking")
    func offered() throws {
        let (chain, sha1) = try issued()
        let setUp = try agent.signet(["setup"])
        #expect(setUp.status == 0 && setUp.output.contains("~/.pki/nssdb: created, registered"), "\(setUp.output)\(setUp.errors)")

        let quiet = try agent.signet(["cert", "import", chain, "--trust-roots"])
        #expect(quiet.status == 0, "\(quiet.output)\(quiet.errors)")
        #expect(quiet.output.contains("Trusted root CA O=Organisation,CN=Organisation Root"), "\(quiet.output)")
        #expect(quiet.errors.contains("Note: your mail programs do not trust O=Organisation,CN=Organisation Root yet: run `signet setup --trust-roots`"),
                "\(quiet.errors)")
        #expect(try signetRootsInNSS().isEmpty)

        let declined = try onTerminal(["cert", "import", chain], answers: "n\n")
        #expect(declined.output.contains("as `signet setup --trust-roots` does? [y/N]"), "\(declined.output)")
        #expect(try signetRootsInNSS().isEmpty, "\(declined.output)")
        #expect(!inTrustList(sha1))

        let accepted = try onTerminal(["cert", "import", chain], answers: "y\n")
        #expect(accepted.status == 0, "\(accepted.output)")
        #expect(accepted.output.contains("~/.pki/nssdb roots: added O=Organisation,CN=Organisation Root (trusted for e-mail)"), "\(accepted.output)")
        #expect(try signetRootsInNSS() == [",C,"], "\(accepted.output)")
        #expect(inTrustList(sha1), "\(accepted.output)")

        let undone = try agent.signet(["setup", "--undo"])
        #expect(undone.status == 0, "\(undone.output)\(undone.errors)")
        #expect(try signetRootsInNSS().isEmpty, "\(undone.output)")
        #expect(!inTrustList(sha1))

        #expect(try agent.signet(["setup"]).status == 0)
        let flagged = try agent.signet(["cert", "import", chain, "--trust-roots-in-programs"])
        #expect(flagged.status == 0, "\(flagged.output)\(flagged.errors)")
        #expect(flagged.output.contains("~/.pki/nssdb roots: added O=Organisation,CN=Organisation Root (trusted for e-mail)"), "\(flagged.output)")
        #expect(try signetRootsInNSS() == [",C,"])
        #expect(inTrustList(sha1))
    }
}
