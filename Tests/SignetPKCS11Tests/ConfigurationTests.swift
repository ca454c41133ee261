import CP11Kit
import Foundation
import SignetCore
import SignetTestSupport
@testable import SignetPKCS11
import Testing

@Suite("Module configuration and defensive calls")
struct ConfigurationTests {
    @Test("Module paths come from the configuration file and SIGNET_PKCS11_MODULE, in that order")
    func resolvesPaths() {
        let config = SignetConfig(parsing: "pkcs11-module = /opt/a.so\np11-kit-modules = no\n")
        let resolved = PKCS11Configuration.resolved(config: config, environment: ["SIGNET_PKCS11_MODULE": "/opt/b.so::/opt/c.so"])
        #expect(resolved.modulePaths == ["/opt/a.so", "/opt/b.so", "/opt/c.so"])
        #expect(!resolved.loadRegisteredModules)
        #expect(PKCS11Configuration.resolved(config: SignetConfig(), environment: [:]).loadRegisteredModules)
    }

    @Test("A function list with NULL entries is refused with the missing function's name, never called")
    func nullFunctionPointers() {
        let list = UnsafeMutablePointer<CK_FUNCTION_LIST>.allocate(capacity: 1)
        defer { list.deallocate() }
        list.initialize(to: CK_FUNCTION_LIST())
        #expect(throws: PKCS11Error.functionMissing("C_GetInfo")) {
            _ = try PKCS11Module(functions: list, name: "empty", path: "/dev/null", isTrustModule: false)
        }
    }

    @Test("Tokens and sessions keep their module loaded after the context that found them is gone")
    func moduleOutlivesContext() throws {
        let created = try SoftHSMFixture.shared.makeToken("outlive")
        func find() throws -> Token {
            let context = try PKCS11Context(configuration: PKCS11Configuration(loadRegisteredModules: false, modulePaths: [SoftHSMFixture.shared.modulePath]))
            return try #require(context.tokens().first { $0.info.serialNumber == created.info.serialNumber })
        }
        let token = try find()  // its context is released here
        #expect(try token.module.tokenInfo(token.slotID).label == created.info.label)
        let session = try token.openSession()
        try session.login(.user, code: SecretBytes(copying: SoftHSMFixture.userCode))
        #expect(try session.isLoggedIn())
    }

    @Test("A module registered with p11-kit whose library is libsignet-pkcs11.so (Signet's own front end) is not loaded; the skip is reported")
    func frontEndNotLoaded() throws {
        // A p11-kit user module file without `disable-in`, as one written by hand would be, naming a copy of SoftHSM2
        // under the front end's file name: p11-kit would load it, so only Signet's guard keeps it out.
        let home = try TestPaths.temporaryDirectory("signet-front-end-guard")
        defer { try? FileManager.default.removeItem(at: home) }
        let library = home.appendingPathComponent(FrontEndGuard.libraryName).path
        // A copy of the file, not of a symlink to it: p11-kit loads one file once, under its first module's name.
        let softhsm = URL(fileURLWithPath: try #require(SoftwareTokens.installedModulePath())).resolvingSymlinksInPath().path
        try FileManager.default.copyItem(atPath: softhsm, toPath: library)
        let modules = home.appendingPathComponent("config/pkcs11/modules")
        try FileManager.default.createDirectory(at: modules, withIntermediateDirectories: true)
        try "module: \(library)\ncritical: no\n".write(to: modules.appendingPathComponent("signet.module"), atomically: true, encoding: .utf8)
        try "directories.tokendir = \(home.path)\nobjectstore.backend = file\n".write(to: home.appendingPathComponent("softhsm2.conf"), atomically: true, encoding: .utf8)
        var environment = TestPaths.userEnvironment(home: home)
        environment["SOFTHSM2_CONF"] = home.appendingPathComponent("softhsm2.conf").path

        // p11-kit reads no user configuration in a process running as root; in a user namespace without a
        // uid map the helper's getuid() is the overflow uid (65534) while it keeps reading root's files.
        let helper = TestPaths.binaries.appendingPathComponent("signet-test-helper").path
        let result = getuid() == 0
            ? try Run.checked("unshare", ["--user", helper, "list-modules"], environment: environment)
            : try Run.checked(helper, ["list-modules"], environment: environment)
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(!lines.contains("loaded \(library)"), "\(result.output)")
        #expect(lines.contains { $0.hasPrefix("skipped \(library): Signet's own front end") }, "\(result.output)")
    }

    @Test("A module whose manufacturerID begins with Signet is Signet's front end under another name; other modules are not")
    func frontEndByManufacturer() {
        #expect(FrontEndGuard.reason(manufacturer: "Signet") != nil)
        #expect(FrontEndGuard.reason(manufacturer: "Signet project") != nil)
        #expect(FrontEndGuard.reason(manufacturer: "SoftHSM") == nil)
        #expect(FrontEndGuard.reason(path: "/usr/lib/x86_64-linux-gnu/pkcs11/libsignet-pkcs11.so") != nil)
        #expect(FrontEndGuard.reason(path: "/usr/lib/softhsm/libsofthsm2.so") == nil)
        #expect(FrontEndGuard.reason(path: "/opt/libsignet-pkcs11.so.bak") == nil)
    }

    @Test("Every CKR code Signet names has a readable meaning; unknown codes show their number")
    func codeNames() {
        #expect(CKReturn.pinIncorrect.name == "CKR_PIN_INCORRECT")
        #expect(CKReturn.tokenNotPresent.description.contains("insert it or tap it"))
        #expect(CKReturn(rawValue: 0x1234_5678).name == "CKR_0x12345678")
    }
}
