import SignetCore
import Testing
@testable import SignetMail

/// `VerdictReport`, the words and JSON `signet verify` and `signet decrypt` give for the layers of a message,
/// for the layers that need no certificate to build (signed and encrypted ones are covered by `VerdictTests`
/// and the CLI's mail tests through real messages).
@Suite("Verdict report")
struct VerdictReportTests {
    @Test("A layer that was not opened says why and what to do, and its JSON names the same result")
    func unopenedLayers() {
        let layers: [LayerVerdict] = [
            .unreadable(depth: 1, .truncated), .unreadable(depth: 1, .detachedSignatureWithoutContent), .unreadable(depth: 2, .compressed),
            .unreadable(depth: 2, .otherContentType("digestedData")), .unchecked(depth: 3, size: 300 << 20), .tooDeep(depth: 9),
        ]
        #expect(layers.map(VerdictReport.lines) == [
            ["Layer 1: the message is truncated: it ends before its structure does. Ask the sender to send it again."],
            ["Layer 1: this signature is detached; give the signed content with --content (and the signature with --signature)."],
            ["Layer 2: compressed data (RFC 3274), which Signet cannot open (its OpenSSL has no zlib). Ask the sender to send it uncompressed."],
            ["Layer 2: not a readable S/MIME message (CMS digestedData content, neither signed nor encrypted)."],
            ["Layer 3: an S/MIME layer of 300 MiB, larger than the \(MessageOpener.maximumSize >> 20) MiB Signet checks; its signature was NOT checked. It is written as it is."],
            ["More than \(MessageOpener.maximumDepth) nested S/MIME layers; stopped."],
        ])
        let json = VerdictReport.json(layers)
        #expect(json.map { $0["result"] } == ["truncated", "detached-without-content", "compressed", "malformed", "unchecked", "too deeply nested"])
        #expect(json.map { $0["layer"] } == ["1", "1", "2", "2", "3", "9"])
        #expect(zip(json, layers).allSatisfy { $0["status"] == "\($1.status.rawValue)" })
    }
}
