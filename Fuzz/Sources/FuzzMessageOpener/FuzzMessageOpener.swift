// The S/MIME opener as `signet verify` and `signet decrypt` run it, up to the token step:
// every signed layer is parsed and verified (signatures, chain, From:/Date:, SHA-1) against
// Thunderbird's test CA; an encrypted layer is parsed and its recipients listed, and the
// walk stops where decryption would ask the agent.
#if canImport(Glibc)
import Glibc
#endif
import FuzzDriver
import SignetCore
import SignetMail
import SignetOpenSSL

/// A home of its own (nothing of the user's trust store or people's certificates is read),
/// trusting `Tests/testdata/thunderbird-smime/smime/TestCA.pem` when run from the repository.
/// (libFuzzer calls the target from one thread only.)
nonisolated(unsafe) private let policy: TrustPolicy = {
    let path = temporaryDirectory("/tmp/signet-fuzz-opener-XXXXXX")
    for name in ["HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"] { setenv(name, path, 1) }
    var policy = TrustPolicy()
    policy.at = "2027-01-01T00:00:00Z"  // the test certificates are valid until 2031
    let anchor = "Tests/testdata/thunderbird-smime/smime/TestCA.pem"
    if access(anchor, R_OK) == 0 {
        policy.trust = [anchor]
    } else {
        let warning = "fuzz-opener: \(anchor) not found (run from the repository): no trusted CA, chains stay untrusted\n"
        _ = warning.withCString { write(2, $0, strlen($0)) }
    }
    return policy
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMessageOpener(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let message = Array(UnsafeBufferPointer(start: data, count: size))
    guard let opener = try? MessageOpener(options: policy, topLevel: message) else { return 0 }
    _ = MessageOpener.mayBeLayer(Array(message.prefix(4096)))
    var layer = MessageOpener.layer(of: message)
    depth: for depth in 1...8 {
        switch layer {
        case .plain, .unreadable:
            break depth
        case .enveloped(let envelope):
            _ = try? envelope.recipients().map(\.description)
            _ = envelope.contentCipher
            break depth  // decrypting needs the token
        case .signed(let signed):
            _ = signed.signers.map { ($0.digest, $0.signatureAlgorithm, $0.signingTime) }
            guard let (_, next) = opener.verify(signed, depth: depth) else { break depth }
            layer = next
        }
    }
    _ = (opener.status, opener.layers.map(\.status), opener.trustedSigners.count)
    return 0
}

@main
enum Main {
    static func main() { runFuzzer(fuzzMessageOpener) }
}
