import COpenSSL
import Foundation
import Glibc
import SignetOpenSSL
import SignetTestSupport
import Testing

/// BIOs made and freed on one thread, counted through an ex_data index whose callbacks OpenSSL calls
/// for every BIO it makes and frees: exact, whatever other suites running alongside allocate.
private enum BIOCount {
    nonisolated(unsafe) static var thread: pthread_t?
    nonisolated(unsafe) static var live = 0
    static let registered = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_BIO, 0, nil, bioMade, nil, bioFreed) >= 0

    /// BIOs that `body`, run on this thread, made and did not free.
    static func leaked(_ body: () -> Void) -> Int {
        precondition(registered)
        thread = pthread_self(); live = 0
        defer { thread = nil }
        body()
        return live
    }
}

private func bioMade(_: UnsafeMutableRawPointer?, _: UnsafeMutableRawPointer?, _: UnsafeMutablePointer<CRYPTO_EX_DATA>?,
                     _: Int32, _: Int, _: UnsafeMutableRawPointer?) {
    if let thread = BIOCount.thread, pthread_equal(thread, pthread_self()) != 0 { BIOCount.live += 1 }
}

private func bioFreed(_: UnsafeMutableRawPointer?, _: UnsafeMutableRawPointer?, _: UnsafeMutablePointer<CRYPTO_EX_DATA>?,
                      _: Int32, _: Int, _: UnsafeMutableRawPointer?) {
    if let thread = BIOCount.thread, pthread_equal(thread, pthread_self()) != 0 { BIOCount.live -= 1 }
}

/// Inputs the fuzz targets found (Fuzz/README.md), each kept in `Fuzz/regressions/TARGET/`.
@Suite("Fuzz regressions: SignetOpenSSL", .serialized)  // serialized: BIOCount follows one thread at a time
struct FuzzRegressionTests {
    static func input(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: TestPaths.repository.appendingPathComponent("Fuzz/regressions/" + path)))
    }

    /// message-opener found it: a multipart/signed message whose signature's digests cannot be set up made
    /// OpenSSL 3.0's CMS_verify lose the memory BIO it copies detached content into, on the CMS_BINARY
    /// retry (openssl/openssl#30471): about 270 bytes a message.
    @Test("A signature whose digests cannot be set up is not good, and checking it loses no BIO")
    func cmsVerifyLeak() throws {
        let message = try SignedMessage(message: try Self.input("message-opener/cms-verify-leak"))
        var verdict: SignedMessage.SignatureReport?
        let leaked = BIOCount.leaked { verdict = message.checkSigners() }
        guard let verdict, verdict.content == nil, !verdict.signers.contains(where: { $0.outcome == .good }) else {
            Issue.record("the damaged signature was reported good: \(String(describing: verdict?.signers.map(\.outcome)))"); return
        }
        #expect(leaked == 0, "checking the signature left \(leaked) BIO(s) unfreed")
    }

    @Test("Checking a good detached signature loses no BIO either")
    func goodSignatureNoLeak() throws {
        let bytes = Array(try Data(contentsOf: TestPaths.testData.appendingPathComponent("thunderbird-smime/smime/alice.dsig.SHA256.multipart.eml")))
        let message = try SignedMessage(message: bytes)
        var verdict: SignedMessage.SignatureReport?
        let leaked = BIOCount.leaked { verdict = message.checkSigners() }
        guard verdict?.signers.map(\.outcome) == [.good] else { Issue.record("Alice's signature did not check: \(String(describing: verdict?.signers.map(\.outcome)))"); return }
        #expect(leaked == 0, "checking the signature left \(leaked) BIO(s) unfreed")
    }
}
