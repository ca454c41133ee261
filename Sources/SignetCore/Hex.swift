/// Hexadecimal text for bytes, and back.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Lower-case hex of `bytes`, with `separator` between bytes (none by default).
    public static func encode<C: Collection>(_ bytes: C, separator: String = "", uppercase: Bool = false) -> String
    where C.Element == UInt8 {
        var out = String()
        out.reserveCapacity(bytes.count * (2 + separator.count))
        var first = true
        for byte in bytes {
            if !first { out += separator }
            first = false
            var pair = [digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]]
            if uppercase { pair = pair.map { $0 >= 0x61 ? $0 - 0x20 : $0 } }
            out += String(decoding: pair, as: UTF8.self)
        }
        return out
    }

    /// Bytes from hex text; spaces and colons are ignored. Returns `nil` on any other character or an odd count.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var out: [UInt8] = []
        var high: UInt8?
        for scalar in text.utf8 {
            let value: UInt8
            switch scalar {
            case 0x30...0x39: value = scalar - 0x30
            case 0x41...0x46: value = scalar - 0x41 + 10
            case 0x61...0x66: value = scalar - 0x61 + 10
            case 0x20, 0x3a: continue
            default: return nil
            }
            if let h = high {
                out.append(h << 4 | value)
                high = nil
            } else {
                high = value
            }
        }
        return high == nil ? out : nil
    }
}
