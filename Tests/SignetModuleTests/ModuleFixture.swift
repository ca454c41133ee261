import Foundation
import SignetTestSupport

/// A real agent with one software token holding an RSA-2048 and a P-256 key, each with a
/// certificate from a throw-away OpenSSL CA, and the path of the built `libsignet-pkcs11.so`:
/// what every consumer test (pkcs11-tool, NSS, OpenSSL, GnuTLS, gpgsm) loads.
final class ModuleFixture: @unchecked Sendable {
    let agent: AgentFixture
    let code: String
    /// Working files: ca.pem, rsa.pem (certificate of key id 01), ec.pem (id 02), message.txt.
    let directory: URL
    static var module: String { TestPaths.binaries.appendingPathComponent("libsignet-pkcs11.so").path }
    var module: String { Self.module }
    var environment: [String: String] { agent.environment }

    init(label: String = "Module Test", code: String = "1234-code", countingCodes: Bool = false, config: String = "") throws {
        agent = try AgentFixture(config: config, countingCodes: countingCodes)
        self.code = code
        directory = agent.home.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try agent.start()
        try agent.makeToken(label, code: code)
        try unlock()
        try enrol()
        try write("message.txt", "Hello from the PKCS#11 module test.\r\n")
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    func write(_ name: String, _ text: String) throws { try text.write(toFile: path(name), atomically: true, encoding: .utf8) }

    /// Runs a program in the agent's environment, in the working directory.
    @discardableResult
    func run(_ executable: String, _ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 120,
             environment extra: [String: String] = [:]) throws -> Run.Result {
        try Run.command("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", directory.path, executable] + arguments,
                        stdin: stdin.map { Data($0.utf8) }, environment: environment.merging(extra) { $1 }, timeout: timeout)
    }

    func unlock() throws {
        let result = try agent.signet(["unlock", "--code-fd", "0"], stdin: code + "\n")
        guard result.status == 0 else { throw TestFailure("unlock failed: \(result.errors)") }
    }

    func lock() throws {
        let result = try agent.signet(["lock"])
        guard result.status == 0 else { throw TestFailure("lock failed: \(result.errors)") }
    }

    private func enrol() throws {
        func must(_ result: Run.Result, _ what: String) throws {
            guard result.status == 0 else { throw TestFailure("\(what) failed (\(result.status)): \(result.errors)") }
        }
        try must(run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                                 "-subj", "/O=Module Test CA/CN=Module Test Root", "-days", "30"]), "the CA")
        try write("mail.ext", "keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement\n"
                  + "extendedKeyUsage=emailProtection,clientAuth\nsubjectAltName=email:alice@example.org\n")
        for (id, type, name) in [("01", "rsa2048", "rsa"), ("02", "p256", "ec")] {
            try must(agent.signet(["key", "generate", "--type", type, "--label", "alice-\(name)", "--id", id]), "key generate")
            try must(agent.signet(["csr", "--key", id, "--subject", "O=Example Org,CN=Alice \(name)", "--email", "alice@example.org",
                                   "-o", path("\(name).csr")]), "csr")
            try must(run("openssl", ["x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                                     "-days", "30", "-extfile", "mail.ext", "-out", "\(name).pem"]), "issuing")
            try must(agent.signet(["cert", "import", path("\(name).pem")]), "cert import")
        }
    }

    /// A fresh NSS database with the module added by `modutil` and the CA trusted; returns its `sql:` name.
    func nssDatabase(_ name: String = "nssdb") throws -> String {
        let dir = path(name)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let db = "sql:" + dir
        for (tool, arguments) in [("certutil", ["-N", "--empty-password", "-d", db]),
                                  ("modutil", ["-dbdir", db, "-add", "Signet", "-libfile", module, "-force"]),
                                  ("certutil", ["-A", "-d", db, "-n", "test-ca", "-t", "C,C,C", "-i", path("ca.pem")])] {
            let result = try run(tool, arguments)
            guard result.status == 0 else { throw TestFailure("\(tool) \(arguments.first ?? "") failed: \(result.output)\(result.errors)") }
        }
        return db
    }

    func stop() { agent.stop() }
    deinit { agent.stop() }
}
