import SignetCore

/// Reads CMS enveloped-data (RFC 5652) or authEnveloped-data (RFC 5083) as it streams in: the small
/// header (recipients, algorithm) is kept, the encrypted content is passed on in pieces without being
/// held, and a header without the content is built for OpenSSL, which then decrypts the content as
/// detached. So a message of any size opens in bounded memory.
public final class EnvelopeStream {
    public enum Kind: Sendable { case enveloped, authEnveloped }

    /// DER bodies of the two content types' object identifiers.
    static let envelopedOID: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03]
    static let authEnvelopedOID: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x01, 0x17]
    /// Largest header element kept (a recipient list for hundreds of people fits).
    public static let elementLimit = 4 << 20

    public let kind: Kind
    private let reader: BERReader
    /// Encoded ContentInfo content type, EnvelopedData version, originatorInfo, recipientInfos,
    /// and the EncryptedContentInfo's content type and algorithm.
    private var contentTypeOID: [UInt8]
    private var leading: [[UInt8]] = []
    private var encryptedContentType: [UInt8] = []
    private var contentAlgorithm: [UInt8] = []
    /// Containers still open (definite end position, or nil for indefinite): ContentInfo, [0], EnvelopedData, EncryptedContentInfo.
    private var open: [Int?] = []
    /// Content framing: the open constructed [0]/OCTET STRING levels and the bytes left in the current segment.
    private var segmentStack: [Int?] = []
    private var segmentLeft = 0
    private var contentDone = false
    /// authAttrs, mac and other elements after the content.
    public private(set) var trailing: [(tag: UInt8, bytes: [UInt8])] = []

    /// Whether `prefix` (the first bytes of a DER/BER message) starts enveloped or authEnveloped data.
    public static func recognises(_ prefix: [UInt8]) -> Bool {
        let reader = BERReader(ArraySource(Array(prefix.prefix(64))))
        guard let outer = try? reader.readHeader(), outer.tag == 0x30,
              let (header, oid) = try? reader.readElement(limit: 64, what: "type"), header.tag == 0x06 else { return false }
        let body = Array(oid.dropFirst(header.encoded.count))
        return body == envelopedOID || body == authEnvelopedOID
    }

    /// Reads up to the start of the encrypted content.
    /// - Throws: `StreamError` when the message is not enveloped data, is malformed, or has no content (detached).
    public init(_ reader: BERReader) throws {
        self.reader = reader
        let outer = try reader.readHeader()
        guard outer.tag == 0x30 else { throw StreamError.malformed("not a CMS message") }
        open.append(outer.length.map { reader.position + $0 })
        let (typeHeader, type) = try reader.readElement(limit: 64, what: "the content type")
        guard typeHeader.tag == 0x06 else { throw StreamError.malformed("not a CMS message (no content type)") }
        contentTypeOID = type
        switch Array(type.dropFirst(typeHeader.encoded.count)) {
        case Self.envelopedOID: kind = .enveloped
        case Self.authEnvelopedOID: kind = .authEnveloped
        default: throw StreamError.malformed("not CMS enveloped data")
        }
        try enter(0xA0, "the enveloped content")
        try enter(0x30, "the enveloped data")
        // version, originatorInfo [0] optional, recipientInfos SET
        while true {
            let (header, element) = try reader.readElement(limit: Self.elementLimit, what: "the message header")
            leading.append(element)
            if header.tag == 0x31 { break }
            guard leading.count < 3, header.tag == 0x02 || header.tag == 0xA0 else { throw StreamError.malformed("the enveloped data has no recipients") }
        }
        try enter(0x30, "the encrypted content information")
        let (typeInner, inner) = try reader.readElement(limit: 64, what: "the encrypted content's type")
        guard typeInner.tag == 0x06 else { throw StreamError.malformed("the encrypted content has no type") }
        encryptedContentType = inner
        let (algorithmHeader, algorithm) = try reader.readElement(limit: 4096, what: "the content encryption algorithm")
        guard algorithmHeader.tag == 0x30 else { throw StreamError.malformed("the content encryption algorithm is missing") }
        contentAlgorithm = algorithm
        if try closes() { throw StreamError.malformed("the encrypted content is not in the message (detached)") }
        let content = try reader.readHeader()
        switch content.tag {
        case 0x80:
            segmentLeft = content.length ?? 0
            segmentStack = []
        case 0xA0:
            segmentStack = [content.length.map { reader.position + $0 }]
        default:
            throw StreamError.malformed("the encrypted content has tag 0x\(Hex.encode([content.tag]))")
        }
    }

    /// Enters a container with `tag`.
    private func enter(_ tag: UInt8, _ what: String) throws {
        let header = try reader.readHeader()
        guard header.tag == tag else { throw StreamError.malformed("\(what) is missing (tag 0x\(Hex.encode([header.tag])))") }
        open.append(header.length.map { reader.position + $0 })
    }

    /// Whether the innermost open container ends here (consuming its end-of-contents octets).
    private func closes() throws -> Bool {
        guard let last = open.last else { return true }
        if let end = last {
            guard reader.position <= end else { throw StreamError.malformed("an element runs past its container") }
            if reader.position == end { open.removeLast(); return true }
            return false
        }
        if try reader.readEndOfContents() { open.removeLast(); return true }
        return false
    }

    /// Copies the next piece of encrypted content into `buffer`; 0 when it is all read.
    public func readContent(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while segmentLeft == 0 {
            if contentDone || segmentStack.isEmpty { contentDone = true; return 0 }
            if let end = segmentStack.last! {
                guard reader.position <= end else { throw StreamError.malformed("the encrypted content's pieces overrun it") }
                if reader.position == end { segmentStack.removeLast(); continue }
            } else if try reader.readEndOfContents() {
                segmentStack.removeLast()
                continue
            }
            let header = try reader.readHeader()
            switch header.tag {
            case 0x04: segmentLeft = header.length ?? 0
            case 0x24:
                // Each level is kept until it closes: 40 MB of nested pieces once held 282 MB.
                guard segmentStack.count < BERReader.depthLimit else { throw StreamError.malformed(BERReader.tooDeep("the encrypted content")) }
                segmentStack.append(header.length.map { reader.position + $0 })
            default: throw StreamError.malformed("the encrypted content has a piece with tag 0x\(Hex.encode([header.tag]))")
            }
        }
        let got = try reader.readSome(into: buffer, limit: segmentLeft)
        guard got > 0 else { throw StreamError.truncated }
        segmentLeft -= got
        return got
    }

    /// After the content: reads the elements that follow (authAttrs and mac, unprotected attributes) and the closing of every container.
    public func finish() throws {
        var scratch = [UInt8](repeating: 0, count: 64 << 10)
        while try scratch.withUnsafeMutableBytes({ try readContent(into: $0) }) > 0 {}
        guard try closes() else { throw StreamError.malformed("the encrypted content information has more than its content") }
        var kept = 0
        while !(try closes()) {
            let (header, element) = try reader.readElement(limit: Self.elementLimit - kept, what: "the message trailer")
            kept += element.count  // all of them within one element's limit, or a long run of them would be held
            trailing.append((header.tag, element))
        }
        while !open.isEmpty {
            guard try closes() else { throw StreamError.malformed("the message has unexpected data after the enveloped data") }
        }
        guard try reader.atEnd() || (try reader.peek(2)).allSatisfy({ $0 == 0 }) else { throw StreamError.malformed("there is data after the message") }
    }

    /// The authentication tag (authEnveloped-data), once `finish` has run.
    public var mac: [UInt8]? { trailing.first { $0.tag == 0x04 }?.bytes }

    /// DER ContentInfo with everything but the encrypted content (and the unprotected attributes), for OpenSSL to
    /// decrypt the content as detached; for authEnveloped data, call `finish` first (the mac comes after the content).
    public func header() -> [UInt8] {
        var body = leading.flatMap { $0 }
        body += DER.tlv(0x30, encryptedContentType + contentAlgorithm)
        if kind == .authEnveloped {
            for element in trailing where element.tag == 0xA1 || element.tag == 0x04 { body += element.bytes }
        }
        return DER.tlv(0x30, contentTypeOID + DER.tlv(0xA0, DER.tlv(0x30, body)))
    }
}

/// Bytes in memory as a source.
public final class ArraySource: ByteSource {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, bytes.count - offset)
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: count) }
        offset += count
        return count
    }
}
