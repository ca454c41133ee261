import Foundation
import SignetCore
import SignetPKCS11

/// One SoftHSM2 instance for this test process, in a fresh temporary directory.
///
/// SoftHSM2 reads `SOFTHSM2_CONF` once per process, so every PKCS#11 test
/// shares this configuration and the loaded module; each test creates its own
/// token with a unique label, so tests stay independent.
public final class SoftHSMFixture: Sendable {
    public static let shared: SoftHSMFixture = {
        do { return try SoftHSMFixture() } catch { fatalError("SoftHSM2 test fixture could not start: \(error)") }
    }()

    /// The codes every test token gets. Test-only values.
    public static let userCode = Array("123456".utf8)
    public static let soCode = Array("so-code-12".utf8)

    public let directory: URL
    public let configPath: String
    public let modulePath: String
    public let context: PKCS11Context

    private init() throws {
        directory = try TestPaths.temporaryDirectory("signet-softhsm")
        let tokens = directory.appendingPathComponent("tokens")
        try FileManager.default.createDirectory(at: tokens, withIntermediateDirectories: true)
        configPath = directory.appendingPathComponent("softhsm2.conf").path
        try """
        directories.tokendir = \(tokens.path)
        objectstore.backend = file
        log.level = ERROR
        slots.removable = false

        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        setenv("SOFTHSM2_CONF", configPath, 1)
        guard let path = SoftwareTokens.installedModulePath() else { throw TestFailure("SoftHSM2 is not installed") }
        modulePath = path
        // Only SoftHSM2, by explicit path: tests must not depend on other modules on the machine.
        context = try PKCS11Context(configuration: PKCS11Configuration(loadRegisteredModules: false, modulePaths: [path]))
    }

    /// Creates a new initialised token with a unique label.
    public func makeToken(_ prefix: String = "t") throws -> Token {
        let label = "\(prefix)-\(UUID().uuidString.prefix(8))"
        return try SoftwareTokens.create(
            in: context, label: label,
            userCode: SecretBytes(copying: SoftHSMFixture.userCode),
            soCode: SecretBytes(copying: SoftHSMFixture.soCode))
    }

    /// A read-write session on a new token, logged in as the user.
    public func loggedInSession(_ prefix: String = "t") throws -> (Token, Session) {
        let token = try makeToken(prefix)
        let session = try token.openSession(readWrite: true)
        try session.login(.user, code: SecretBytes(copying: SoftHSMFixture.userCode))
        return (token, session)
    }
}
