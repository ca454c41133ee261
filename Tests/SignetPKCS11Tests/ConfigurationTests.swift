import CP11Kit
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

    @Test("Every CKR code Signet names has a readable meaning; unknown codes show their number")
    func codeNames() {
        #expect(CKReturn.pinIncorrect.name == "CKR_PIN_INCORRECT")
        #expect(CKReturn.tokenNotPresent.description.contains("insert it or tap it"))
        #expect(CKReturn(rawValue: 0x1234_5678).name == "CKR_0x12345678")
    }
}
