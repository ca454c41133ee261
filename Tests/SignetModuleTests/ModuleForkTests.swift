import Foundation
import SignetTestSupport
import Testing

/// The module's fork guarantee with threads (docs/pkcs11-module.md, "Fork"): a C host
/// (Tests/signet-module-fork) forks 200 times while six threads are inside the module; every child
/// initialises, lists slots and finalises within 10 s. Before the module freed its lock in the child
/// (`pthread_atfork`), about one fork in sixteen left a child waiting for ever in `C_Initialize`.
@Suite("PKCS#11 module: fork with threads inside")
final class ModuleForkTests {
    static var harness: String { TestPaths.binaries.appendingPathComponent("signet-module-fork").path }

    @Test("Children forked while six threads call into the module initialise and answer; none deadlocks")
    func forkWithThreads() async throws {
        try await offPool {
            let fixture = try ModuleFixture()
            defer { fixture.stop() }
            let result = try fixture.run(Self.harness, [fixture.module, "6", "200"], timeout: 600)
            #expect(result.status == 0, "\(result.output)\(result.errors.suffix(2000))")
            #expect(result.output.contains("200 forks, 0 deadlocked, 0 failed"), "\(result.output)\(result.errors.suffix(2000))")
        }
    }
}
