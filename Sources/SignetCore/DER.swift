/// The few DER encodings the token layer needs (public keys as
/// SubjectPublicKeyInfo, ECDSA signatures as `ECDSA-Sig-Value`).
/// Full X.509 and CMS work is done by OpenSSL and swift-certificates in the
/// layers above; this stays small on purpose.
public enum DER {
    /// Errors from `DER.readTLV`.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case truncated
        case unexpectedTag(expected: UInt8, found: UInt8)
        case badLength
        /// More bytes after the value that should be all there is.
        case trailingBytes

        public var description: String {
            switch self {
            case .truncated: "DER value is truncated"
            case .unexpectedTag(let expected, let found):
                "DER tag 0x\(Hex.encode([found])) where 0x\(Hex.encode([expected])) was expected"
            case .badLength: "DER length is malformed"
            case .trailingBytes: "bytes after the DER value"
            }
        }
    }

    /// Tag, length and `contents` as one DER value.
    public static func tlv(_ tag: UInt8, _ contents: [UInt8]) -> [UInt8] {
        tlv(tag: [tag], contents)
    }

    /// The same with a tag of several bytes (BER-TLV as smart cards use it: `5F 2F`, `5F C1 02`).
    public static func tlv(tag: [UInt8], _ contents: [UInt8]) -> [UInt8] {
        tag + length(contents.count) + contents
    }

    /// A SEQUENCE of already-encoded values.
    public static func sequence(_ items: [[UInt8]]) -> [UInt8] { tlv(0x30, items.flatMap { $0 }) }

    /// An unsigned big-endian integer as a DER INTEGER (minimal, non-negative).
    public static func unsignedInteger(_ magnitude: [UInt8]) -> [UInt8] {
        var bytes = Array(magnitude.drop(while: { $0 == 0 }))
        if bytes.isEmpty { bytes = [0] }
        if bytes[0] & 0x80 != 0 { bytes.insert(0, at: 0) }
        return tlv(0x02, bytes)
    }

    /// A BIT STRING with no unused bits.
    public static func bitString(_ bytes: [UInt8]) -> [UInt8] { tlv(0x03, [0] + bytes) }

    /// DER NULL.
    public static let null: [UInt8] = [0x05, 0x00]

    /// An OBJECT IDENTIFIER from its dotted arcs.
    public static func objectIdentifier(_ arcs: [UInt64]) -> [UInt8] {
        precondition(arcs.count >= 2, "an OID has at least two arcs")
        var body = base128(arcs[0] * 40 + arcs[1])
        for arc in arcs.dropFirst(2) { body += base128(arc) }
        return tlv(0x06, body)
    }

    /// Reads one value with `tag` at the start of `bytes`; returns its contents and the rest.
    /// - Throws: `ParseError.truncated`, `.unexpectedTag` or `.badLength` when `bytes` does not start with such a value.
    public static func readTLV(_ bytes: ArraySlice<UInt8>, tag: UInt8) throws(ParseError) -> (contents: ArraySlice<UInt8>, rest: ArraySlice<UInt8>) {
        guard let first = bytes.first else { throw .truncated }
        guard first == tag else { throw .unexpectedTag(expected: tag, found: first) }
        var index = bytes.index(after: bytes.startIndex)
        guard index < bytes.endIndex else { throw .truncated }
        let lengthByte = bytes[index]
        index += 1
        var length = 0
        if lengthByte < 0x80 {
            length = Int(lengthByte)
        } else {
            let count = Int(lengthByte & 0x7f)
            guard count >= 1, count <= 4 else { throw .badLength }
            guard bytes.endIndex - index >= count else { throw .truncated }
            for _ in 0..<count {
                length = length << 8 | Int(bytes[index])
                index += 1
            }
        }
        guard bytes.endIndex - index >= length else { throw .truncated }
        return (bytes[index..<index + length], bytes[(index + length)...])
    }

    /// An uncompressed EC point from `value`: the point itself, or the point inside a DER OCTET STRING
    /// (`CKA_EC_POINT` is specified as the latter, some modules give the former, and NSS sends ECDH
    /// peers both ways); the field's size tells them apart. Nil for anything else.
    public static func uncompressedPoint(_ value: [UInt8], fieldLength: Int) -> [UInt8]? {
        let rawLength = 2 * fieldLength + 1
        if value.count == rawLength, value.first == 0x04 { return value }
        guard let (contents, rest) = try? readTLV(value[...], tag: 0x04), rest.isEmpty, contents.count == rawLength,
              contents.first == 0x04 else { return nil }
        return Array(contents)
    }

    /// Reads the value at the start of `bytes`, whatever its (single-byte) tag: the tag, the whole
    /// encoding (tag and length included), its contents and the rest.
    /// - Throws: `ParseError` as `readTLV` does.
    public static func element(_ bytes: ArraySlice<UInt8>) throws(ParseError)
        -> (tag: UInt8, whole: ArraySlice<UInt8>, contents: ArraySlice<UInt8>, rest: ArraySlice<UInt8>) {
        guard let tag = bytes.first else { throw .truncated }
        let (contents, rest) = try readTLV(bytes, tag: tag)
        return (tag, bytes[bytes.startIndex..<rest.startIndex], contents, rest)
    }

    static func length(_ count: Int) -> [UInt8] {
        if count < 0x80 { return [UInt8(count)] }
        var bytes: [UInt8] = []
        var value = count
        while value > 0 {
            bytes.insert(UInt8(value & 0xff), at: 0)
            value >>= 8
        }
        return [0x80 | UInt8(bytes.count)] + bytes
    }

    static func base128(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = [UInt8(value & 0x7f)]
        var rest = value >> 7
        while rest > 0 {
            out.insert(UInt8(rest & 0x7f) | 0x80, at: 0)
            rest >>= 7
        }
        return out
    }
}

/// PEM armour (RFC 7468) for DER bytes.
public enum PEM {
    /// `-----BEGIN label-----`, base64 in 64-column lines, `-----END label-----`.
    public static func encode(_ der: [UInt8], label: String) -> String {
        let base64 = Base64.encode(der)
        var lines = ["-----BEGIN \(label)-----"]
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(String(base64[index..<end]))
            index = end
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Standard base64 (RFC 4648) without line breaks.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = bytes[index]
            let b1 = index + 1 < bytes.count ? bytes[index + 1] : 0
            let b2 = index + 2 < bytes.count ? bytes[index + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(index + 1 < bytes.count ? alphabet[Int((b1 & 0x0f) << 2 | b2 >> 6)] : 0x3d)
            out.append(index + 2 < bytes.count ? alphabet[Int(b2 & 0x3f)] : 0x3d)
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
