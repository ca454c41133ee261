import Foundation
import SignetCore
@testable import SignetOpenSSL
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

/// Streamed decryption of hostile framing (issue 19 #5): memory must stay flat whatever the message.
@Suite("Hardening: streamed enveloped data")
struct EnvelopeStreamHardeningTests {
    static let envelopedType: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03]
    static let dataType: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01]
    static let algorithm: [UInt8] = [0x30, 0x0B, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2A]

    /// NSS-style enveloped data whose content pieces are `pieces`, followed by `trailer` (unprotected attributes and such).
    static func message(pieces: [UInt8], trailer: [UInt8] = []) -> [UInt8] {
        [0x30, 0x80] + envelopedType + [0xA0, 0x80, 0x30, 0x80, 0x02, 0x01, 0x00, 0x31, 0x03, 0x02, 0x01, 0x07]
            + [0x30, 0x80] + dataType + algorithm + [0xA0, 0x80] + pieces + [0x00, 0x00] + [0x00, 0x00] + trailer + [0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
    }

    /// Content pieces nested `depth` constructed OCTET STRINGs deep around one byte.
    static func nested(depth: Int) -> [UInt8] {
        Array([[UInt8]](repeating: [0x24, 0x80], count: depth).joined()) + [0x04, 0x01, 0x07]
            + [UInt8](repeating: 0, count: 2 * depth)
    }

    func drain(_ stream: EnvelopeStream) throws -> [UInt8] {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let got = try buffer.withUnsafeMutableBytes { try stream.readContent(into: $0) }
            if got == 0 { return all }
            all += buffer[..<got]
        }
    }

    @Test("Content pieces nested 100,000 deep are refused once past the depth limit, not stacked up")
    func deepPiecesAreRefused() throws {
        let stream = try EnvelopeStream(BERReader(ArraySource(Self.message(pieces: Self.nested(depth: 100_000)))))
        #expect(throws: StreamError.malformed("the encrypted content nests BER deeper than \(BERReader.depthLimit) levels; it is not a message a mail program makes")) {
            try drain(stream)
        }
    }

    @Test("Content pieces nested just within the limit are read")
    func piecesWithinTheLimitAreRead() throws {
        let stream = try EnvelopeStream(BERReader(ArraySource(Self.message(pieces: Self.nested(depth: BERReader.depthLimit - 1)))))
        #expect(try drain(stream) == [0x07])
        try stream.finish()
    }

    @Test("Elements after the content are kept up to one element's limit in all, not without end")
    func trailingElementsAreBounded() throws {
        let megabyte = DER.tlv(0xA1, [UInt8](repeating: 0x55, count: 1 << 20))
        let within = try EnvelopeStream(BERReader(ArraySource(Self.message(pieces: [0x04, 0x01, 0x07], trailer: megabyte + megabyte))))
        try within.finish()
        #expect(within.trailing.count == 2)
        let many = Array([[UInt8]](repeating: megabyte, count: 8).joined())
        let stream = try EnvelopeStream(BERReader(ArraySource(Self.message(pieces: [0x04, 0x01, 0x07], trailer: many))))
        #expect(throws: StreamError.tooLarge("the message trailer")) { try stream.finish() }
    }
}
