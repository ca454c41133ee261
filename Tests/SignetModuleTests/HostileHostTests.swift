import Foundation
import SignetTestSupport
import Testing

/// libsignet-pkcs11.so in a hostile C host (`signet-module-hostile`): NULL pointers, short buffers,
/// lengths that break the contract, stale handles, calls out of order, thousands of random calls.
/// The host checks each answer it can name against PKCS#11 2.40 and bounds each call (60 s); a crash
/// of the module is a crash of the host, seen here as a signal.
@Suite("PKCS#11 module: a hostile host", .serialized)
final class HostileHostTests {
    static var host: String { TestPaths.binaries.appendingPathComponent("signet-module-hostile").path }

    /// Runs one mode of the hostile host against a fresh token; returns its output.
    func run(_ arguments: [String], timeout: TimeInterval = 300) throws -> Run.Result {
        let fixture = try ModuleFixture()
        defer { fixture.stop() }
        return try fixture.run(Self.host, [fixture.module] + arguments, timeout: timeout)
    }

    func expectClean(_ result: Run.Result) {
        let failed = result.output.split(separator: "\n").filter { $0.hasPrefix("FAIL") || $0.hasPrefix("HANG") }
        #expect(result.status == 0, "exit \(result.status): \(failed.joined(separator: "\n"))\n\(result.errors)")
        #expect(result.output.contains("0 failed"), "\(result.output.suffix(2000))")
    }

    @Test("Every function answers CKR_CRYPTOKI_NOT_INITIALIZED before C_Initialize and after C_Finalize; old handles are stale")
    func lifecycle() async throws { try await offPool { self.expectClean(try self.run(["lifecycle"])) } }

    @Test("NULL pointers and NULL length pointers answer CKR_ARGUMENTS_BAD, and an error ends the operation")
    func nulls() async throws { try await offPool { self.expectClean(try self.run(["nulls"])) } }

    @Test("Length queries answer the length; a buffer one byte short answers CKR_BUFFER_TOO_SMALL with the length set")
    func buffers() async throws { try await offPool { self.expectClean(try self.run(["buffers"])) } }

    @Test("ULONG_MAX counts and lengths and CK_UNAVAILABLE_INFORMATION values answer a CKR_* code, never a trap")
    func lengths() async throws { try await offPool { self.expectClean(try self.run(["lengths"])) } }

    @Test("The answers PKCS#11 names: slots before a refresh, session errors first, key handles, operations ended, RSA ciphertexts")
    func answers() async throws {
        try await offPool {
            let fixture = try ModuleFixture()
            defer { fixture.stop() }
            self.expectClean(try fixture.run(Self.host, [fixture.module, "answers"], timeout: 300))
            // The ciphertext with bad padding reached the agent (the wrong length did not): its audit
            // record blames the input, not the token.
            let decrypts = fixture.agent.auditEntries.filter { $0["action"] as? String == "decrypt" }
            #expect(decrypts.count == 1, "\(decrypts)")
            #expect(decrypts.allSatisfy { ($0["result"] as? String) == "error:data-invalid" }, "\(decrypts)")
        }
    }

    @Test("Every advertised mechanism is accepted, and no other mechanism number is")
    func mechanisms() async throws {
        try await offPool {
            let result = try self.run(["mechanisms"])
            self.expectClean(result)
            #expect(result.output.contains("16 advertised, 8183 others refused, 0 others accepted"), "\(result.output.suffix(500))")
        }
    }

    @Test("6000 calls in a seeded random order: no crash, no hang, memory flat over the last 4000, and the module signs afterwards")
    func random() async throws {
        try await offPool {
            let result = try self.run(["random", "25", "6000"])
            self.expectClean(result)
            #expect(result.output.contains("6000 random calls from seed 25"), "\(result.output.suffix(500))")
        }
    }
}
