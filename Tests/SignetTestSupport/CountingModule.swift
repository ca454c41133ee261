import Foundation
import SignetPKCS11

/// The test PKCS#11 wrapper module (`Tests/CTestPKCS11Wrapper`) around the
/// fixture's SoftHSM2: it logs every code presented to a token, so tests
/// count what reached the token at the module boundary, and it can add token
/// flags SoftHSM2 never reports (final try, blocked).
public final class CountingModule: Sendable {
    public static let shared: CountingModule = {
        do { return try CountingModule() } catch { fatalError("counting PKCS#11 wrapper could not load: \(error)") }
    }()

    public let path: String
    public let logPath: String
    public let flagsDirectory: String
    public let context: PKCS11Context

    private init() throws {
        let softHSM = SoftHSMFixture.shared  // sets SOFTHSM2_CONF first
        path = TestPaths.binaries.appendingPathComponent("libSignetTestPKCS11Wrapper.so").path
        let directory = try TestPaths.temporaryDirectory("signet-wrapper")
        logPath = directory.appendingPathComponent("calls.log").path
        flagsDirectory = directory.appendingPathComponent("flags").path
        try FileManager.default.createDirectory(atPath: flagsDirectory, withIntermediateDirectories: true)
        setenv("SIGNET_WRAPPED_MODULE", softHSM.modulePath, 1)
        setenv("SIGNET_WRAPPER_LOG", logPath, 1)
        setenv("SIGNET_WRAPPER_FLAGS_DIR", flagsDirectory, 1)
        context = try PKCS11Context(configuration: PKCS11Configuration(loadRegisteredModules: false, modulePaths: [path]))
    }

    /// The environment a helper process needs to load the same wrapper and tokens.
    public var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["SOFTHSM2_CONF"] = SoftHSMFixture.shared.configPath
        env["SIGNET_WRAPPED_MODULE"] = SoftHSMFixture.shared.modulePath
        env["SIGNET_WRAPPER_LOG"] = logPath
        env["SIGNET_WRAPPER_FLAGS_DIR"] = flagsDirectory
        return env
    }

    /// A fresh token, seen through the wrapper.
    public func makeToken(_ prefix: String) throws -> Token {
        let created = try SoftHSMFixture.shared.makeToken(prefix)
        guard let token = context.tokens().first(where: { $0.info.serialNumber == created.info.serialNumber }) else {
            throw TestFailure("the wrapper does not see token \(created.info.label)")
        }
        return token
    }

    /// How many times `call` ("C_Login USER", "C_Login SO", "C_SetPIN", "C_InitPIN") reached `token`.
    public func count(_ call: String, on token: Token) -> Int {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return 0 }
        let line = "\(call) \(token.info.serialNumber)"
        return text.split(separator: "\n").filter { $0 == line }.count
    }

    /// Makes the token report `flags` in addition to its own (hex `CKF_*` bits); `nil` clears.
    public func addFlags(_ flags: TokenFlags?, to token: Token) throws {
        let file = "\(flagsDirectory)/\(token.slotID)"
        if let flags {
            try String(flags.rawValue, radix: 16).write(toFile: file, atomically: true, encoding: .utf8)
        } else {
            try? FileManager.default.removeItem(atPath: file)
        }
    }
}
