import SignetCore
import Testing

/// Findings of the security review (issue 19) in the core layer, each tested at its cause.
@Suite("Hardening: hostile input to the core parsers")
struct CoreHardeningTests {
    static let envelopedType: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03]

    /// Enveloped data whose recipient list is `depth` SETs of indefinite length, one inside the other.
    static func nestedRecipients(depth: Int) -> [UInt8] {
        [0x30, 0x80] + envelopedType + [0xA0, 0x80, 0x30, 0x80, 0x02, 0x01, 0x00]
            + [UInt8](repeating: 0, count: 2 * depth).enumerated().map { $0.offset % 2 == 0 ? 0x31 : 0x80 }
            + [UInt8](repeating: 0, count: 2 * depth)
    }

    @Test("A recipient list of 100,000 nested indefinite lengths (200 KB) is refused as too deep, without overflowing the stack")
    func deepBERIsRefused() {
        let message = Self.nestedRecipients(depth: 100_000)
        #expect(message.count > 200_000)
        #expect {
            try EnvelopeStream(BERReader(ArraySource(message)))
        } throws: { error in
            "\(error)".contains("nests BER deeper than \(BERReader.depthLimit) levels")
        }
    }

    @Test("Nesting up to the depth limit is still read")
    func nestingAtTheLimitIsRead() throws {
        let limit = BERReader.depthLimit
        let inner = Self.nestedRecipients(depth: limit).dropFirst(2 + Self.envelopedType.count + 7)
        let (header, element) = try BERReader(ArraySource(Array(inner))).readElement(limit: 1 << 20, what: "the list")
        #expect(header.tag == 0x31)
        #expect(element.count == 4 * limit)
        #expect(throws: StreamError.malformed("the list nests BER deeper than \(limit) levels; it is not a message a mail program makes")) {
            try BERReader(ArraySource(Array(Self.nestedRecipients(depth: limit + 1).dropFirst(2 + Self.envelopedType.count + 7))))
                .readElement(limit: 1 << 20, what: "the list")
        }
    }
}
