import Foundation
import SignetTestSupport
import Testing

/// OpenSC's p11test, a PKCS#11 conformance suite nobody here wrote, run against libsignet-pkcs11.so
/// with a token holding an RSA-2048 and a P-256 key pair and their certificates. scripts/build-p11test
/// builds it from Debian's opensc source into the SwiftPM bin directory (scripts/test does so first).
@Suite("PKCS#11 module: OpenSC's p11test", .serialized)
final class P11TestTests {
    static var p11test: String { TestPaths.binaries.appendingPathComponent("p11test").path }

    /// The p11test cases that fail for a reason docs/pkcs11-module.md gives ("OpenSC's p11test"), by
    /// cmocka's name. Every other case must pass; a case listed here that passes fails the test too,
    /// so the list follows the module.
    static let expectedFailures: [String: String] = [
        // p11test's own sanity rules, not PKCS#11's: CKA_WRAP on a public key whose private key has CKA_UNWRAP,
        // and CKA_DERIVE on both halves of an EC pair. The module shows the token's usage attributes, and
        // a public key's CKA_WRAP is false: the agent's listing does not carry it, and the module wraps nothing.
        "usage_test": "docs/pkcs11-module.md, \"OpenSC's p11test\": usage_test",
    ]

    /// The error lines of the documented failures (usage_test's).
    static let expectedErrors = ["If Unwrap is set, Wrap should be set too.", "Derive should be set on both private and public part."]

    @Test("p11test's cases pass, but for those that fail for a documented design reason")
    func conformance() async throws {
        try await offPool {
            #expect(FileManager.default.isExecutableFile(atPath: Self.p11test),
                    "no \(Self.p11test): run scripts/build-p11test \"$(swift build --show-bin-path)\" (scripts/test does)")
            let fixture = try ModuleFixture()
            defer { fixture.stop() }
            let log = fixture.path("p11test.json")
            let result = try fixture.run(Self.p11test, ["-m", fixture.module, "-p", fixture.code, "-o", log], timeout: 600)
            let lines = (result.output + result.errors).split(separator: "\n").map(String.init)
            // cmocka prints "[  FAILED  ] name" and "[       OK ] name" per case.
            let failed = Set(lines.filter { $0.hasPrefix("[  FAILED  ]") && !$0.contains("test(s)") }.map { $0.dropFirst(13).trimmingCharacters(in: .whitespaces) })
            let passed = Set(lines.filter { $0.hasPrefix("[       OK ]") }.map { $0.dropFirst(13).trimmingCharacters(in: .whitespaces) })
            #expect(!passed.isEmpty, "p11test ran no case: \(result.output)\(result.errors)")
            let unexpected = failed.subtracting(Self.expectedFailures.keys)
            #expect(unexpected.isEmpty, "p11test cases failing: \(unexpected.sorted())\n\(result.output)\(result.errors)")
            // p11test also reports some faults only as "[ ERROR id ]" lines in a case that passes (an invalid
            // signature in multipart_tests): each must be one of the documented ones.
            let errors = lines.filter { line in line.contains("[ ERROR ") && !Self.expectedErrors.contains { line.contains($0) } }
            #expect(errors.isEmpty, "p11test reported errors: \(errors)")
            let fixed = Set(Self.expectedFailures.keys).intersection(passed)
            #expect(fixed.isEmpty, "p11test cases listed as failing now pass: \(fixed.sorted()) (update the list and docs/pkcs11-module.md)")
        }
    }
}
